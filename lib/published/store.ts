/**
 * Published artifacts on disk, one directory per smolvm version beside the local builds:
 *
 *   <imagesDir>/<version>/release.json, release.json.sig   the manifest as fetched (and trusted)
 *   <imagesDir>/<version>/fetched.json                     from where and when
 *   <imagesDir>/<version>/<image>-<arch>-<sha16>/rootfs.ext4 (+ .from-sha256, published.json)
 *   <imagesDir>/<version>/kernel-<arch>-<sha16>/vmlinux|Image (+ .from-sha256, published.json)
 *   <imagesDir>/<version>/.downloads/*.partial             interrupted downloads, resumed later
 *   <imagesDir>/<version>/.unreachable.json                the last failure to reach the source
 *   <imagesDir>/<version>/.lock-*, .tmp-*                  pulls in progress (or killed)
 *
 * An artifact directory is named by the compressed file's SHA-256, so a release whose checksum
 * changes unpacks beside the old copy instead of over it: a stopped sandbox's overlay keeps the
 * base it was made on, and `prune` removes the old one once nothing uses it. The `.from-sha256`
 * sidecar names the checksum the file came from; a directory without a matching one is not
 * used. Each artifact has its own directory because the QEMU backend keeps a per-directory
 * overlay template beside a cached base image.
 */
import { readdir, readFile } from "node:fs/promises";
import { join } from "node:path";
import { z } from "../zod.ts";
import { paths } from "../paths.ts";
import { GUEST_ARCHES, type GuestArch } from "../kernel/arch.ts";
import { exists } from "../util/cache-lock.ts";
import { versionSchema } from "./manifest.ts";

export const SIDECAR_SUFFIX = ".from-sha256";
export const INFO_FILE = "published.json";
export const ROOTFS_FILE = "rootfs.ext4";

export const publishedInfoSchema = z.object({
  kind: z.enum(["kernel", "rootfs"]),
  version: z.string(),
  arch: z.enum(GUEST_ARCHES),
  /** The image, for a rootfs. */
  image: z.optional(z.string()),
  /** The compressed file it came from, and its SHA-256 (the sidecar says the same). */
  file: z.string(),
  sha256: z.string(),
  url: z.string(),
  unpackedAt: z.string(),
  recipeHash: z.optional(z.string()),
  sizeMiB: z.optional(z.number()),
  usedMiB: z.optional(z.number()),
  init: z.optional(z.string()),
  agentSha256: z.optional(z.string()),
});
export type PublishedInfo = z.infer<typeof publishedInfoSchema>;

export interface PublishedArtifact extends PublishedInfo {
  dir: string;
  /** The unpacked file: rootfs.ext4, vmlinux or Image. */
  path: string;
}

export function versionDir(version: string): string {
  // The version names a directory: never let it name another one.
  return join(paths.imagesDir(), versionSchema.parse(version));
}

export function artifactDirName(kind: "kernel" | "rootfs", arch: GuestArch, sha256: string, image?: string): string {
  return `${kind === "kernel" ? "kernel" : image}-${arch}-${sha256.slice(0, 16)}`;
}

export function artifactFileName(kind: "kernel" | "rootfs", arch: GuestArch): string {
  return kind === "rootfs" ? ROOTFS_FILE : arch === "x86_64" ? "vmlinux" : "Image";
}

/** The artifact in `dir` when it is complete and came from `sha256` (any checksum if omitted). */
export async function readArtifact(dir: string, expectedSha256?: string): Promise<PublishedArtifact | undefined> {
  try {
    const info = publishedInfoSchema.parse(JSON.parse(await readFile(join(dir, INFO_FILE), "utf8")));
    const path = join(dir, artifactFileName(info.kind, info.arch));
    const sidecar = (await readFile(`${path}${SIDECAR_SUFFIX}`, "utf8")).trim();
    if (sidecar !== info.sha256 || (expectedSha256 !== undefined && sidecar !== expectedSha256)) return undefined;
    if (!(await exists(path))) return undefined;
    return { ...info, dir, path };
  } catch {
    return undefined;
  }
}

/** Version directories in the cache (not local builds, which end in -<arch>-<hash16>). */
export async function listVersionDirs(): Promise<string[]> {
  const entries = await readdir(paths.imagesDir(), { withFileTypes: true }).catch(() => []);
  return entries
    .filter((e) => e.isDirectory() && !e.name.startsWith(".") && versionSchema.safeParse(e.name).success)
    .filter((e) => !/-(x86_64|aarch64)-[0-9a-f]{16}$/.test(e.name))
    .map((e) => e.name);
}

/** Every complete published artifact in the cache, all versions. */
export async function listPublished(): Promise<PublishedArtifact[]> {
  const found: PublishedArtifact[] = [];
  for (const version of await listVersionDirs()) {
    const dir = join(paths.imagesDir(), version);
    for (const name of await readdir(dir).catch(() => [] as string[])) {
      if (name.startsWith(".")) continue;
      const artifact = await readArtifact(join(dir, name));
      if (artifact) found.push(artifact);
    }
  }
  return found.sort((a, b) => b.unpackedAt.localeCompare(a.unpackedAt));
}
