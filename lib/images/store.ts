/**
 * The image cache on disk:
 *
 *   <imagesDir>/<name>-<arch>-<hash16>/rootfs.ext4     the image
 *   <imagesDir>/<name>-<arch>-<hash16>/manifest.json   what it is (see `imageManifestSchema`)
 *   <imagesDir>/<name>-<arch>-<hash16>/build.log
 *   <imagesDir>/.rootfs/<name>-<arch>-<key16>.tar      cached Debian stage (debian.ts)
 *   <imagesDir>/.logs/, .tmp-*, .lock-*               builds in progress or failed
 */
import { readdir, readFile, rm } from "node:fs/promises";
import { join } from "node:path";
import { z } from "../zod.ts";
import { paths } from "../paths.ts";
import { GUEST_ARCHES, type GuestArch } from "../kernel/arch.ts";
import { NotFoundError } from "../errors.ts";
import { exists } from "../util/cache-lock.ts";
import { knownImages } from "./recipes.ts";

export const IMAGE_FILE = "rootfs.ext4";

export const imageManifestSchema = z.object({
  name: z.string(),
  arch: z.enum(GUEST_ARCHES),
  recipeHash: z.string(),
  sizeMiB: z.number(),
  usedMiB: z.number(),
  /** PID 1 of the image: the kernel's `init=`. */
  init: z.string(),
  agentSha256: z.optional(z.string()),
  builderVersion: z.number(),
  createdAt: z.string(),
  buildSeconds: z.number(),
});

export type ImageManifest = z.infer<typeof imageManifestSchema>;

export interface ImageInfo extends ImageManifest {
  /** Absolute path of the ext4 file. */
  path: string;
  dir: string;
}

export function imageDirName(name: string, arch: GuestArch, hash: string): string {
  return `${name}-${arch}-${hash.slice(0, 16)}`;
}

export function imageDir(name: string, arch: GuestArch, hash: string): string {
  return join(paths.imagesDir(), imageDirName(name, arch, hash));
}

export async function readImage(dir: string): Promise<ImageInfo | undefined> {
  try {
    const manifest = imageManifestSchema.parse(JSON.parse(await readFile(join(dir, "manifest.json"), "utf8")));
    const path = join(dir, IMAGE_FILE);
    if (!(await exists(path))) return undefined;
    return { ...manifest, path, dir };
  } catch {
    return undefined;
  }
}

/** Every built image in the cache, newest first. */
export async function listImages(): Promise<ImageInfo[]> {
  let names: string[];
  try {
    names = await readdir(paths.imagesDir());
  } catch {
    return [];
  }
  const images: ImageInfo[] = [];
  for (const name of names) {
    if (name.startsWith(".")) continue;
    const image = await readImage(join(paths.imagesDir(), name));
    if (image) images.push(image);
  }
  return images.sort((a, b) => b.createdAt.localeCompare(a.createdAt));
}

/** Names `removeImage` accepts: the recipes plus the benchmark floor image. */
export function removableImageNames(): string[] {
  return [...knownImages(), "floor"];
}

/**
 * Deletes every cached build of image `name` (all arches and recipe versions) and its cached
 * root filesystem stage. Returns the paths removed (empty when nothing was built).
 * Sandboxes still running from a removed image keep their open file; new ones rebuild it.
 */
export async function removeImage(name: string): Promise<string[]> {
  if (!removableImageNames().includes(name)) {
    throw new NotFoundError(`Cannot remove image "${name}": there is no image by that name`, {
      hint: `known images: ${removableImageNames().join(", ")}`,
      details: { name, known: removableImageNames() },
    });
  }
  const removed: string[] = [];
  for (const image of await listImages()) {
    if (image.name !== name) continue;
    await rm(image.dir, { recursive: true, force: true });
    removed.push(image.dir);
  }
  const stageDir = join(paths.imagesDir(), ".rootfs");
  for (const file of await readdir(stageDir).catch(() => [] as string[])) {
    const m = /^(.+)-(?:x86_64|aarch64)-[0-9a-f]{16}\.tar$/.exec(file);
    if (m?.[1] === name) {
      await rm(join(stageDir, file), { force: true });
      removed.push(join(stageDir, file));
    }
  }
  return removed;
}
