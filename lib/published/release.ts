/**
 * `smolvm release build`: the release directory one smolvm version publishes. For each arch,
 * the kernel (from the kernel cache, built when missing) and each image (likewise) are
 * compressed with the `zstd` program (level 19, 128 MiB long-distance window: measured 3.6 s
 * for a 384 MiB base image here, against 14 s for node:zlib's zstd at the same settings,
 * single-threaded), then `manifest.json` lists them by (image, arch, vmm) and, with a key,
 * `manifest.json.sig` signs it. The same files serve QEMU and Firecracker, so each image has a
 * row for both.
 */
import { createHash } from "node:crypto";
import { createReadStream } from "node:fs";
import { chmod, mkdir, readFile, rename, rm, stat, writeFile } from "node:fs/promises";
import { join, resolve } from "node:path";
import { HostDependencyMissingError, InvalidInputError, NotFoundError, SmolError } from "../errors.ts";
import { runHostChecked, which } from "../host/process.ts";
import type { GuestArch } from "../kernel/arch.ts";
import { versionInfo } from "../version.ts";
import { ZSTD_WINDOW_LOG } from "./download.ts";
import {
  kernelFileName, MANIFEST_FILE, MANIFEST_SCHEMA, parseManifest, rootfsFileName, SIGNATURE_FILE, VMMS,
  type FileEntry, type ManifestRow, type ReleaseManifest,
} from "./manifest.ts";
import { sha256Hex, signManifest } from "./trust.ts";

export const ZSTD_LEVEL = 19;

export interface ReleaseBuildOptions {
  outDir: string;
  arches: readonly GuestArch[];
  images: readonly string[];
  /** PEM ed25519 private key; without one the release is unsigned (trusted by SHA-256 pin only). */
  signingKeyPem?: string;
  onProgress?: (step: string, fraction?: number) => void;
  log?: (line: string) => void;
}

export interface ReleaseBuildResult {
  outDir: string;
  manifestSha256: string;
  /** The key that signed it, or null for an unsigned release. */
  keyId: string | null;
  version: string;
  rows: number;
  files: { file: string; size: number; sha256: string }[];
  compressSeconds: number;
}

export async function buildRelease(o: ReleaseBuildOptions): Promise<ReleaseBuildResult> {
  if (!which("zstd")) {
    throw new HostDependencyMissingError("Cannot build the release: the zstd program is not installed", {
      hint: "install it with `apt-get install zstd` (or run `smolvm setup`)",
    });
  }
  if (o.arches.length === 0 || o.images.length === 0) {
    throw new InvalidInputError("Cannot build the release: it needs at least one arch and one image", { hint: "e.g. --arch x86_64 --image base" });
  }
  const outDir = resolve(o.outDir);
  await mkdir(outDir, { recursive: true });
  const { ensureKernel } = await import("../kernel/build.ts");
  const { buildImage } = await import("../images/build.ts");
  const step = o.onProgress ?? (() => {});
  const rows: ManifestRow[] = [];
  const files: ReleaseBuildResult["files"] = [];
  let compressMs = 0;
  const compress = async (input: string, file: string): Promise<FileEntry> => {
    const started = performance.now();
    const entry = await compressInto(input, join(outDir, file), file);
    compressMs += performance.now() - started;
    files.push({ file, size: entry.size, sha256: entry.sha256 });
    return entry;
  };

  const total = o.arches.length * (1 + o.images.length);
  let done = 0;
  for (const arch of o.arches) {
    step(`kernel ${arch}`, done / total);
    const kernelPath = await ensureKernel(arch, { onProgress: (p) => step(`kernel ${arch}: ${p.message}`, (done + (p.fraction ?? 0)) / total) });
    step(`kernel ${arch}: compressing`, done / total);
    const kernel = { ...(await compress(kernelPath, kernelFileName(arch))), format: arch === "x86_64" ? "vmlinux" as const : "Image" as const };
    done++;
    for (const image of o.images) {
      step(`image ${image} ${arch}`, done / total);
      const built = await buildImage(image, {
        arch,
        onProgress: (p) => step(`image ${image} ${arch}: ${p.message}`, (done + (p.fraction ?? 0)) / total),
        ...(o.log ? { log: o.log } : {}),
      });
      step(`image ${image} ${arch}: compressing`, done / total);
      const rootfs = await compress(built.path, rootfsFileName(image, arch));
      if (built.agentSha256 === undefined) {
        throw new SmolError("INTERNAL", `Cannot publish image "${image}": its build does not record the agent it carries`, { hint: "rebuild it with `smolvm image build --force`" });
      }
      for (const vmm of VMMS) {
        rows.push({
          image, arch, vmm, kernel, rootfs,
          agentSha256: built.agentSha256,
          recipeHash: built.recipeHash,
          sizeMiB: built.sizeMiB,
          usedMiB: built.usedMiB,
          init: built.init,
        });
      }
      done++;
    }
  }

  const version = versionInfo().version;
  const manifest: ReleaseManifest = { schema: MANIFEST_SCHEMA, smolvmVersion: version, createdAt: new Date().toISOString(), rows };
  const bytes = Buffer.from(JSON.stringify(manifest, null, 2) + "\n");
  parseManifest(bytes, { url: join(outDir, MANIFEST_FILE) }); // what we publish must be what clients accept
  let keyId: string | null = null;
  await rm(join(outDir, SIGNATURE_FILE), { force: true });
  if (o.signingKeyPem !== undefined) {
    const signed = signManifest(bytes, o.signingKeyPem);
    keyId = signed.keyId;
    await writeAtomic(join(outDir, SIGNATURE_FILE), signed.text);
  }
  await writeAtomic(join(outDir, MANIFEST_FILE), bytes);
  const manifestSha256 = sha256Hex(bytes);
  const sums = [...files.map((f) => `${f.sha256}  ${f.file}`), `${manifestSha256}  ${MANIFEST_FILE}`].join("\n") + "\n";
  await writeAtomic(join(outDir, "SHA256SUMS"), sums);
  step("done", 1);
  return { outDir, manifestSha256, keyId, version, rows: rows.length, files, compressSeconds: Math.round(compressMs / 100) / 10 };
}

/** Compresses `input` to `output` with the zstd program; sizes and SHA-256 of both sides. */
async function compressInto(input: string, output: string, file: string): Promise<FileEntry> {
  const temp = `${output}.${process.pid}.tmp`;
  try {
    await runHostChecked("zstd", ["-q", "-f", `-${ZSTD_LEVEL}`, `--long=${ZSTD_WINDOW_LOG}`, "-T0", input, "-o", temp], {
      action: `Cannot compress "${input}"`,
      timeoutMs: 60 * 60_000,
    });
    const [unpacked, packed] = await Promise.all([hashFile(input), hashFile(temp)]);
    // zstd keeps the input's mode (a kernel's 0755); a published file is plain data.
    await chmod(temp, 0o644);
    await rename(temp, output);
    return { file, size: packed.size, sha256: packed.sha256, unpackedSize: unpacked.size, unpackedSha256: unpacked.sha256 };
  } finally {
    await rm(temp, { force: true });
  }
}

async function hashFile(path: string): Promise<{ size: number; sha256: string }> {
  const hash = createHash("sha256");
  for await (const chunk of createReadStream(path, { highWaterMark: 1 << 20 })) hash.update(chunk as Buffer);
  return { size: (await stat(path)).size, sha256: hash.digest("hex") };
}

async function writeAtomic(path: string, data: string | Uint8Array): Promise<void> {
  const temp = `${path}.${process.pid}.tmp`;
  await writeFile(temp, data);
  await rename(temp, path);
}

/** Reads a signing key file, with an error that says what to do. */
export async function readSigningKey(path: string): Promise<string> {
  try {
    return await readFile(path, "utf8");
  } catch (cause) {
    throw new NotFoundError(`Cannot read the signing key "${path}"`, {
      cause,
      hint: "make one with `smolvm release keygen --out FILE`, or pass --unsigned for a release trusted by its SHA-256",
    });
  }
}
