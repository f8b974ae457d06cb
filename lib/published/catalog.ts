/**
 * Every root image the cache holds, local builds and published copies alike, with where each
 * came from: what `smolvm image list` shows.
 */
import { listImages } from "../images/store.ts";
import type { GuestArch } from "../kernel/arch.ts";
import { listPublished } from "./store.ts";

export interface CachedImage {
  name: string;
  arch: GuestArch;
  origin: { kind: "local" } | { kind: "published"; version: string; url: string; sha256: string };
  recipeHash: string | undefined;
  sizeMiB: number | undefined;
  /** The ext4 file. */
  path: string;
  dir: string;
  /** When it was built, or unpacked. */
  createdAt: string;
}

export async function listCachedImages(): Promise<CachedImage[]> {
  const local: CachedImage[] = (await listImages()).map((image) => ({
    name: image.name,
    arch: image.arch,
    origin: { kind: "local" },
    recipeHash: image.recipeHash,
    sizeMiB: image.sizeMiB,
    path: image.path,
    dir: image.dir,
    createdAt: image.createdAt,
  }));
  const published: CachedImage[] = (await listPublished())
    .filter((artifact) => artifact.kind === "rootfs" && artifact.image !== undefined)
    .map((artifact) => ({
      name: artifact.image!,
      arch: artifact.arch,
      origin: { kind: "published", version: artifact.version, url: artifact.url, sha256: artifact.sha256 },
      recipeHash: artifact.recipeHash,
      sizeMiB: artifact.sizeMiB,
      path: artifact.path,
      dir: artifact.dir,
      createdAt: artifact.unpackedAt,
    }));
  return [...local, ...published].sort((a, b) => a.name.localeCompare(b.name) || b.createdAt.localeCompare(a.createdAt));
}

/**
 * `smolvm image rm NAME`: every local build of `name` and every published copy of it, all
 * arches and versions. Returns the paths removed.
 */
export async function removeCachedImage(name: string): Promise<string[]> {
  const { removeImage } = await import("../images/store.ts");
  const { rm } = await import("node:fs/promises");
  const removed = await removeImage(name);
  for (const artifact of await listPublished()) {
    if (artifact.kind !== "rootfs" || artifact.image !== name) continue;
    await rm(artifact.dir, { recursive: true, force: true });
    removed.push(artifact.dir);
  }
  return removed;
}
