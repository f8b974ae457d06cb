/**
 * A snapshot on disk: one directory holding the backend's state file(s), the disk layer and
 * `manifest.json`, which names every file with its role, size and SHA-256, and what a restore
 * must match (backend, VMM build, arch, accelerator, kernel, image). The layout is the same for
 * every backend:
 *
 *   snapshots/<name>/manifest.json
 *                   /vmstate.zst     state   QEMU: devices and memory, one migration stream
 *                   /memory.zst      memory  (a backend that writes guest memory apart)
 *                   /disk.qcow2      disk    the guest's writes over its image (QEMU: a qcow2
 *                                            overlay with zstd-compressed clusters)
 *
 * State and memory files are what `Vmm.saveState` wrote, each zstd-compressed by the store
 * (`NAME.zst`); the disk layer is what `Backend.packDisk` wrote, compressed its own way, and is
 * read back by `Backend.prepareDisk({ layer })`. The manifest is read from disk, so it is checked
 * against this schema like any other input.
 */
import { readFileSync, statSync } from "node:fs";
import { writeFile, rename } from "node:fs/promises";
import { join } from "node:path";
import { sandboxConfigSchema, type SandboxConfig } from "../config.ts";
import { parseOrThrow } from "../validate.ts";
import { z } from "../zod.ts";
import { syncFile } from "./_files.ts";

export const MANIFEST_FILE = "manifest.json";
/** Bumped when the layout changes incompatibly; a smolvm refuses formats it does not know. */
export const SNAPSHOT_FORMAT = 1;

/** A snapshot's name (also its directory): the rule of sandbox names. */
export const SNAPSHOT_NAME_PATTERN = /^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$/;
/** A template's name is its image's. */
const TEMPLATE_NAME_PATTERN = /^[a-z0-9][a-z0-9._-]{0,62}$/;

const sha256 = z.string().check(z.regex(/^[0-9a-f]{64}$/));
const count = z.int().check(z.nonnegative());
const stamp = z.object({ path: z.string().check(z.startsWith("/")), size: count, mtimeMs: z.number() });

export const snapshotFileSchema = z.object({
  role: z.enum(["state", "memory", "disk"]),
  /** A plain file name inside the snapshot's directory. */
  file: z.string().check(z.regex(/^[A-Za-z0-9][A-Za-z0-9._-]*$/)),
  /** `zstd`: a saveState file compressed by the store; `layer`: a disk layer as packDisk wrote it. */
  encoding: z.enum(["zstd", "layer"]),
  bytes: count,
  sha256,
});
export type SnapshotFile = z.infer<typeof snapshotFileSchema>;

export const manifestSchema = z.object({
  format: z.literal(SNAPSHOT_FORMAT),
  kind: z.enum(["snapshot", "template"]),
  name: z.string().check(z.regex(TEMPLATE_NAME_PATTERN)),
  createdAt: z.number(),
  /** The sandbox it was taken of. */
  source: z.object({ id: z.string(), name: z.string() }),
  backend: z.enum(["qemu", "firecracker"]),
  vmm: z.object({ version: z.string(), fingerprint: z.string() }),
  arch: z.enum(["x86_64", "aarch64"]),
  accel: z.enum(["kvm", "hvf", "tcg"]),
  /** The kernel the guest runs: restored with exactly this build. */
  kernel: z.object({ ...stamp.shape, sha256 }),
  /** The image the disk layer is over. */
  image: z.object({ name: z.string(), ...stamp.shape }),
  /** The source's config (without its name and env): what a sandbox made from it gets. */
  config: z.omit(sandboxConfigSchema, { name: true, env: true }),
  /** How long the source was stopped while it was taken. */
  pausedMs: z.number(),
  files: z.array(snapshotFileSchema).check(z.minLength(1)),
});
export type SnapshotManifest = z.infer<typeof manifestSchema>;
export type SnapshotConfig = Omit<SandboxConfig, "name" | "env">;

/** Far more than any manifest holds: a larger file is not one, and is not read into memory. */
const MANIFEST_MAX_BYTES = 1024 * 1024;

/** Reads and checks `dir/manifest.json`. */
export function readManifest(dir: string): SnapshotManifest {
  const file = join(dir, MANIFEST_FILE);
  let text: unknown;
  try {
    const size = statSync(file).size;
    if (size > MANIFEST_MAX_BYTES) throw new Error(`it is ${size} bytes, more than a manifest's ${MANIFEST_MAX_BYTES}`);
    text = JSON.parse(readFileSync(file, "utf8"));
  } catch (cause) {
    return parseOrThrow(manifestSchema, { unreadable: String(cause) }, `snapshot manifest "${file}"`);
  }
  return parseOrThrow(manifestSchema, text, `snapshot manifest "${file}"`,
    "the snapshot was damaged or made by another smolvm; remove it and take a new one");
}

/** Writes `dir/manifest.json` whole (temp file, flushed, renamed). */
export async function writeManifest(dir: string, manifest: SnapshotManifest): Promise<void> {
  const file = join(dir, MANIFEST_FILE);
  const temp = `${file}.tmp`;
  await writeFile(temp, `${JSON.stringify(manifestSchema.parse(manifest), null, 2)}\n`, { mode: 0o600 });
  await syncFile(temp);
  await rename(temp, file);
}

/** Total bytes stored. */
export function storedBytes(manifest: SnapshotManifest): number {
  return manifest.files.reduce((sum, file) => sum + file.bytes, 0);
}
