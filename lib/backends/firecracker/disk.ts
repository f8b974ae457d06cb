/**
 * A Firecracker sandbox's root drive. Firecracker reads raw files only (no qcow2 overlays), so an
 * isolated sandbox gets its own sparse copy of the image (`cp --sparse=always`, a reflink where the
 * filesystem has them). Measured here on the 384 MiB base image (18 MiB allocated): 12-50 ms per
 * copy, median 23 ms of 5, against 25-41 ms for `qemu-img create` of a qcow2 overlay. A shared
 * sandbox writes to the image itself.
 */
import { existsSync } from "node:fs";
import { rename, rm, stat, truncate } from "node:fs/promises";
import { join, resolve } from "node:path";
import { InvalidInputError, NotFoundError } from "../../errors.ts";
import { runHostChecked } from "../../host/process.ts";
import { FIRECRACKER_FILES } from "./launch-spec.ts";

export interface FirecrackerDiskRequest {
  /** The image's ext4 file. Never written to in isolated mode. */
  imagePath: string;
  /** The sandbox's directory: the isolated copy is made there. */
  vmDir: string;
  mode: "isolated" | "shared";
  /** Grow the isolated copy to this size (the guest sees a larger disk; the filesystem is not resized). */
  sizeMiB?: number;
}

export interface FirecrackerDisk {
  path: string;
  format: "raw";
  readOnly: boolean;
  /** Whether the copy was made now (false: kept from an earlier start, or shared). */
  created: boolean;
}

export async function prepareFirecrackerDisk(request: FirecrackerDiskRequest): Promise<FirecrackerDisk> {
  const image = resolve(request.imagePath);
  if (request.mode === "shared") {
    if (!existsSync(image)) throw missing(image);
    return { path: image, format: "raw", readOnly: false, created: false };
  }
  const copy = join(resolve(request.vmDir), FIRECRACKER_FILES.disk);
  if (existsSync(copy)) return { path: copy, format: "raw", readOnly: false, created: false };
  if (!existsSync(image)) throw missing(image);
  const imageBytes = (await stat(image)).size;
  const wantBytes = request.sizeMiB === undefined ? imageBytes : request.sizeMiB * 1024 * 1024;
  if (wantBytes < imageBytes) {
    throw new InvalidInputError(`Cannot make the disk of ${request.sizeMiB} MiB: the image "${image}" is larger (${Math.ceil(imageBytes / 1048576)} MiB)`, {
      hint: "give a disk size at least as large as the image, or none",
    });
  }
  // Made aside and renamed, so an interrupted copy never passes for a disk.
  const temp = `${copy}.${process.pid}.tmp`;
  try {
    await runHostChecked("cp", ["--reflink=auto", "--sparse=always", "--", image, temp], {
      action: `Cannot copy the image "${image}" for the sandbox's disk`,
      timeoutMs: 120_000,
    });
    if (wantBytes > imageBytes) await truncate(temp, wantBytes);
    await rename(temp, copy);
  } finally {
    await rm(temp, { force: true });
  }
  return { path: copy, format: "raw", readOnly: false, created: true };
}

function missing(image: string): NotFoundError {
  return new NotFoundError(`Cannot attach the disk: the image "${image}" does not exist`, {
    hint: "build or download the image first (`smolvm image build NAME`)",
  });
}
