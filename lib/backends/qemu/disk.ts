/**
 * A QEMU sandbox's root disk: a qcow2 overlay over the read-only image (isolated mode), or the
 * image itself (shared mode).
 */
import { constants as fsConstants, existsSync } from "node:fs";
import { copyFile, mkdir, rename, rm } from "node:fs/promises";
import { dirname, join, resolve, sep } from "node:path";
import { BackendUnavailableError, InvalidInputError, NotFoundError } from "../../errors.ts";
import { runHostChecked, which } from "../../host/process.ts";
import { paths } from "../../paths.ts";
import type { DiskRequest, PreparedDisk } from "../types.ts";

/** The file name of an isolated sandbox's overlay inside its directory. */
export const OVERLAY_FILE = "disk.qcow2";

/**
 * Creates a qcow2 overlay at `overlayPath` whose reads fall through to `basePath` (left
 * untouched). The base is referenced by absolute path, so the overlay may live anywhere.
 *
 * With `templateDir` (for a base in the image cache, whose directory is replaced whole when the
 * image is rebuilt), the first overlay of each size is made by qemu-img and kept there, and
 * later ones are byte copies of it: an empty overlay is ~200 KB, while spawning qemu-img costs
 * 20-40 ms of every create.
 */
export async function createOverlay(
  basePath: string,
  overlayPath: string,
  options: { baseFormat?: "raw" | "qcow2"; sizeMiB?: number; templateDir?: string } = {},
): Promise<void> {
  const base = resolve(basePath);
  if (!existsSync(base)) {
    throw new NotFoundError(`Cannot create the disk overlay "${overlayPath}": the base image "${base}" does not exist`, {
      hint: "build or download the image first (`smolvm image build NAME`)",
      details: { base, overlayPath },
    });
  }
  const qemuImg = which("qemu-img");
  if (!qemuImg) {
    throw new BackendUnavailableError(`Cannot create the disk overlay "${overlayPath}": "qemu-img" is not installed`, {
      hint: "run `smolvm setup`, or install the qemu-utils package",
    });
  }
  await mkdir(dirname(resolve(overlayPath)), { recursive: true });
  const create = async (path: string) => {
    const args = ["create", "-q", "-f", "qcow2", "-F", options.baseFormat ?? "raw", "-b", base, path];
    if (options.sizeMiB !== undefined) args.push(`${options.sizeMiB}M`);
    await runHostChecked(qemuImg, args, { action: `Cannot create the disk overlay "${overlayPath}"`, timeoutMs: 30_000 });
  };
  if (options.templateDir === undefined) return create(overlayPath);
  const template = join(options.templateDir, `.overlay-${options.sizeMiB ?? "base"}-${options.baseFormat ?? "raw"}.qcow2`);
  if (!existsSync(template)) {
    // Made aside and renamed: concurrent creates each make one, and any of them is right.
    const temp = `${template}.${process.pid}.tmp`;
    try {
      await create(temp);
      await rename(temp, template);
    } finally {
      await rm(temp, { force: true });
    }
  }
  await copyFile(template, overlayPath, fsConstants.COPYFILE_EXCL);
}

/** The disk a QEMU sandbox boots: its overlay (made once, kept across stop/start) or the shared image. */
export async function prepareQemuDisk(request: DiskRequest): Promise<PreparedDisk> {
  if (request.mode === "shared") {
    if (!existsSync(request.imagePath)) {
      throw new NotFoundError(`Cannot attach the disk: the image "${request.imagePath}" does not exist`);
    }
    return { path: resolve(request.imagePath), format: "raw", readOnly: false, created: false };
  }
  const overlay = join(resolve(request.vmDir), OVERLAY_FILE);
  if (existsSync(overlay)) return { path: overlay, format: "qcow2", readOnly: false, created: false };
  const image = resolve(request.imagePath);
  if (request.layer !== undefined) {
    // A snapshot's layer is a qcow2 over the same image already: the sandbox's copy is its disk.
    await mkdir(dirname(overlay), { recursive: true });
    await copyFile(request.layer, overlay, fsConstants.COPYFILE_EXCL);
    return { path: overlay, format: "qcow2", readOnly: false, created: true };
  }
  const cached = image.startsWith(`${resolve(paths.imagesDir())}${sep}`);
  await createOverlay(image, overlay, {
    ...(request.sizeMiB === undefined ? {} : { sizeMiB: request.sizeMiB }),
    ...(cached ? { templateDir: dirname(image) } : {}),
  });
  return { path: overlay, format: "qcow2", readOnly: false, created: true };
}

/** captureDisk's copy of a stopped sandbox's overlay, inside the snapshot's directory. */
export const CAPTURE_FILE = "disk.capture.qcow2";
/** The stored layer: a qcow2 over the image, its clusters zstd-compressed. */
export const LAYER_FILE = "disk.qcow2";

/**
 * Copies a stopped sandbox's overlay for a snapshot. An overlay holds only the guest's own
 * writes (a few MB for a fresh sandbox: the copy takes milliseconds), and the shared image is
 * not copied at all, so it is refused here.
 */
export async function captureQemuDisk(disk: PreparedDisk, dir: string): Promise<void> {
  if (disk.format !== "qcow2" || disk.readOnly) {
    throw new InvalidInputError(`Cannot capture the disk "${disk.path}": only an isolated (qcow2 overlay) disk can be snapshotted`, {
      hint: "create the sandbox with the default --disk-mode isolated",
    });
  }
  await copyFile(disk.path, join(dir, CAPTURE_FILE), fsConstants.COPYFILE_EXCL);
}

/**
 * Rewrites the captured overlay as the stored layer: only its own clusters (what the guest
 * wrote; reads of the rest fall through to `imagePath`), each compressed with zstd. A qcow2 reads
 * compressed clusters directly, so a sandbox made from the snapshot boots on a plain copy of it.
 */
export async function packQemuDisk(dir: string, imagePath: string): Promise<string> {
  const qemuImg = which("qemu-img");
  if (!qemuImg) {
    throw new BackendUnavailableError("Cannot store the snapshot's disk: \"qemu-img\" is not installed", {
      hint: "run `smolvm setup`, or install the qemu-utils package",
    });
  }
  const capture = join(dir, CAPTURE_FILE);
  await runHostChecked(qemuImg, [
    "convert", "-q", "-c", "-O", "qcow2", "-o", "compression_type=zstd", "-F", "raw", "-B", resolve(imagePath), capture, join(dir, LAYER_FILE),
  ], { action: "Cannot store the snapshot's disk", timeoutMs: 10 * 60_000 });
  await rm(capture, { force: true });
  return LAYER_FILE;
}
