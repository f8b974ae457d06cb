/**
 * Reading the kernel cache: which kernels are built, and which one the current recipe wants.
 * Finding a kernel never reads the source or asks dpkg: any build of the current recipe (same
 * build script, config fragments and builder version) will do, the newest first, whichever
 * Debian version of the source it came from. A newer source is built by `smolvm kernel build`.
 */
import { readdir, readFile } from "node:fs/promises";
import { join } from "node:path";
import { z } from "../zod.ts";
import { paths } from "../paths.ts";
import { SmolError } from "../errors.ts";
import { exists } from "../util/cache-lock.ts";
import { GUEST_ARCHES, hostGuestArch, type GuestArch } from "./arch.ts";
import { kernelInputs, recipeKey } from "./recipe.ts";

const manifestSchema = z.object({
  arch: z.enum(GUEST_ARCHES),
  key: z.string(),
  /**
   * The recipe's own key (recipe.ts): equal for every source version built with this recipe.
   * Absent in builds made before it existed, which are then never current (prune takes them).
   */
  recipeKey: z.optional(z.string()),
  artifact: z.enum(["vmlinux", "Image"]),
  source: z.object({
    /** Absent in builds made before sources were identified by dpkg (they named a sha256). */
    id: z.optional(z.string()),
    description: z.string(),
    package: z.optional(z.string()),
    version: z.optional(z.string()),
  }),
  builderVersion: z.number(),
  builtAt: z.string(),
  buildSeconds: z.number(),
});

/** `manifest.json` in each kernel directory. */
export type KernelManifest = z.infer<typeof manifestSchema>;

export interface KernelInfo extends KernelManifest {
  /** The cache directory of this build. */
  dir: string;
  /** Absolute path of the bootable image (`vmlinux` or `Image`). */
  path: string;
  /** The kernel's full .config. */
  configPath: string;
  logPath: string;
  /** Whether the current recipe and pinned sources produce this build (false: an older one). */
  current: boolean;
}

export async function readKernelManifest(dir: string): Promise<KernelInfo> {
  let manifest: KernelManifest;
  try {
    manifest = manifestSchema.parse(JSON.parse(await readFile(join(dir, "manifest.json"), "utf8")));
  } catch (cause) {
    throw new SmolError("STATE_CORRUPT", `Cannot read the kernel build "${dir}": its manifest.json is missing or invalid`, {
      cause,
      hint: `remove the directory and build again with \`smolvm kernel build\``,
    });
  }
  return {
    ...manifest,
    dir,
    path: join(dir, manifest.artifact),
    configPath: join(dir, "config"),
    logPath: join(dir, "build.log"),
    current: manifest.recipeKey === recipeKey(kernelInputs(manifest.arch)),
  };
}

/** The cached kernel image for `arch` built from the current recipe (the newest), if there is one. */
export async function findKernel(arch: GuestArch = hostGuestArch()): Promise<string | undefined> {
  const newest = (await listKernels()).find((kernel) => kernel.arch === arch && kernel.current);
  return newest === undefined || !(await exists(newest.path)) ? undefined : newest.path;
}

/** Every kernel in the cache, current and stale, newest first. */
export async function listKernels(): Promise<KernelInfo[]> {
  let names: string[];
  try {
    names = await readdir(paths.kernelsDir());
  } catch {
    return [];
  }
  const kernels: KernelInfo[] = [];
  for (const name of names) {
    if (name.startsWith(".")) continue;
    const dir = join(paths.kernelsDir(), name);
    if (!(await exists(join(dir, "manifest.json")))) continue;
    try {
      kernels.push(await readKernelManifest(dir));
    } catch {
      // A damaged entry is skipped here; `smolvm prune` can remove it.
    }
  }
  return kernels.sort((a, b) => b.builtAt.localeCompare(a.builtAt));
}
