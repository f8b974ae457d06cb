/**
 * Building root filesystem images from recipes, without root and without mounting:
 * assemble a tree in a temp dir beside the cache entry, `mkfs.ext4 -d` it, publish the entry
 * with one rename. A build is named by its recipe hash (recipes.ts), so asking again for the
 * same image returns the cached file at once.
 */
import { mkdir, rename, rm, writeFile } from "node:fs/promises";
import { dirname, join } from "node:path";
import { paths } from "../paths.ts";
import { CommandFailedError, SmolError } from "../errors.ts";
import { hostGuestArch, type GuestArch } from "../kernel/arch.ts";
import { AGENT_GUEST_PATH } from "../kernel/cmdline.ts";
import { sha256File } from "../kernel/source.ts";
import { agentBinary } from "./agent.ts";
import { assembleExt4 } from "./assemble.ts";
import { buildInto, withLock } from "../util/cache-lock.ts";
import { ensureDebianTarball } from "./debian.ts";
import { getRecipe, IMAGE_BUILDER_VERSION, recipeHash, sha256Hex, type Recipe } from "./recipes.ts";
import { IMAGE_FILE, imageDir, imageDirName, readImage, type ImageInfo, type ImageManifest } from "./store.ts";
import { ensureForeignBusybox, runnerFor } from "./foreign-busybox.ts";
import { findStaticBusybox, installBusybox, writeOverlay } from "./tree.ts";

export type ImageBuildPhase = "prepare" | "wait" | "rootfs" | "tree" | "mkfs" | "done";

export interface ImageProgress {
  phase: ImageBuildPhase;
  message: string;
  /** 0..1 over the whole build (an estimate while mmdebstrap runs). */
  fraction?: number;
}

export interface BuildImageOptions {
  arch?: GuestArch;
  /** Rebuild even when cached (for Debian: also re-run mmdebstrap to pick up new packages). */
  force?: boolean;
  /** The agent to install; default the one smolvm ships (lib/agent). */
  agent?: Uint8Array;
  onProgress?: (progress: ImageProgress) => void;
  /** Every line of build tool output (it also goes to the build log). */
  log?: (line: string) => void;
}

/** What a recipe needs besides itself, resolved once per build (it feeds the hash). */
interface ResolvedInputs {
  arch: GuestArch;
  agent: Uint8Array;
  agentSha256: string;
  busybox?: string;
  extra: Record<string, string>;
}

async function resolveInputs(recipe: Recipe, options: BuildImageOptions & { cachedOnly?: boolean }): Promise<ResolvedInputs> {
  const arch = options.arch ?? hostGuestArch();
  const agent = options.agent ?? (await agentBinary(arch));
  const resolved: ResolvedInputs = { arch, agent, agentSha256: sha256Hex(agent), extra: {} };
  if (recipe.rootfs.kind === "busybox") {
    if (arch === hostGuestArch()) {
      resolved.busybox = await findStaticBusybox();
    } else {
      const logPath = join(paths.imagesDir(), ".logs", `busybox-${arch}.log`);
      await mkdir(dirname(logPath), { recursive: true });
      resolved.busybox = await ensureForeignBusybox(arch, {
        logPath,
        ...(options.log ? { onLine: options.log } : {}),
        ...(options.cachedOnly ? { cachedOnly: true } : {}),
      });
    }
    resolved.extra.busybox = await sha256File(resolved.busybox);
  }
  return resolved;
}

/**
 * The recipe hash `name` would be built under now (resolving the agent and host binaries; a
 * foreign arch's busybox only from the cache, so asking never downloads anything).
 */
export async function currentRecipeHash(name: string, options: Pick<BuildImageOptions, "arch" | "agent"> = {}): Promise<string> {
  const recipe = getRecipe(name);
  const inputs = await resolveInputs(recipe, { ...options, cachedOnly: true });
  return recipeHash(recipe, inputs);
}

/** Builds image `name` (or returns the cached build of the same recipe hash unless `force`). */
export async function buildImage(name: string, options: BuildImageOptions = {}): Promise<ImageInfo> {
  const recipe = getRecipe(name);
  const progress = options.onProgress ?? (() => {});
  progress({ phase: "prepare", message: `resolving inputs of ${name}`, fraction: 0 });
  const inputs = await resolveInputs(recipe, options);
  const hash = recipeHash(recipe, inputs);
  const finalDir = imageDir(name, inputs.arch, hash);
  const dirName = imageDirName(name, inputs.arch, hash);

  if (!options.force) {
    const cached = await readImage(finalDir);
    if (cached) {
      progress({ phase: "done", message: `cached: ${cached.path}`, fraction: 1 });
      return cached;
    }
  }
  return withLock(join(paths.imagesDir(), `.lock-${dirName}`), async () => {
    if (!options.force) {
      const cached = await readImage(finalDir);
      if (cached) {
        progress({ phase: "done", message: `cached: ${cached.path}`, fraction: 1 });
        return cached;
      }
    }
    const started = Date.now();
    const logPath = join(paths.imagesDir(), ".logs", `${dirName}.log`);
    await mkdir(dirname(logPath), { recursive: true });
    await writeFile(logPath, `smolvm image build ${dirName} (recipe hash ${hash})\n`);
    try {
      await buildInto(paths.imagesDir(), dirName, finalDir, { replace: options.force === true }, async (tempDir) => {
        let tarball: string | undefined;
        const rootfsShare = recipe.rootfs.kind === "mmdebstrap" ? 0.85 : 0;
        if (recipe.rootfs.kind === "mmdebstrap") {
          progress({ phase: "rootfs", message: "building the Debian root filesystem (mmdebstrap)", fraction: 0.01 });
          tarball = await ensureDebianTarball({
            name,
            arch: inputs.arch,
            rootfs: recipe.rootfs,
            logPath,
            ...(options.force === undefined ? {} : { force: options.force }),
            ...(options.log ? { onLine: options.log } : {}),
            onProgress: (fraction, message) => progress({ phase: "rootfs", message, fraction: fraction * rootfsShare }),
          });
        }

        progress({ phase: "tree", message: "assembling the file tree", fraction: rootfsShare + 0.02 });
        const overlay = join(tempDir, "overlay");
        await writeOverlay(overlay, recipe, inputs.agent);
        if (inputs.busybox) await installBusybox(overlay, inputs.busybox, runnerFor(inputs.arch));

        progress({ phase: "mkfs", message: "creating the ext4 filesystem", fraction: rootfsShare + 0.05 });
        const { sizeMiB, usedMiB } = await assembleExt4({
          treeDir: join(tempDir, "tree"),
          overlayDir: overlay,
          ...(tarball ? { tarball } : {}),
          remove: recipe.remove,
          freeMiB: recipe.freeMiB,
          label: `smolvm-${name}`,
          imagePath: join(tempDir, IMAGE_FILE),
          logPath,
          ...(options.log ? { onLine: options.log } : {}),
        });
        await rm(join(tempDir, "tree"), { recursive: true, force: true });
        await rm(overlay, { recursive: true, force: true });

        const manifest: ImageManifest = {
          name,
          arch: inputs.arch,
          recipeHash: hash,
          sizeMiB,
          usedMiB,
          init: AGENT_GUEST_PATH,
          agentSha256: inputs.agentSha256,
          builderVersion: IMAGE_BUILDER_VERSION,
          createdAt: new Date().toISOString(),
          buildSeconds: Math.round((Date.now() - started) / 100) / 10,
        };
        await writeFile(join(tempDir, "manifest.json"), JSON.stringify(manifest, null, 2) + "\n");
        await rename(logPath, join(tempDir, "build.log"));
      });
    } catch (error) {
      if (error instanceof SmolError) throw error;
      throw new CommandFailedError(`Cannot build image "${name}": ${(error as Error).message}`, {
        cause: error,
        hint: `the build log is ${logPath}`,
      });
    }
    const image = await readImage(finalDir);
    if (!image) throw new SmolError("INTERNAL", `Cannot build image "${name}": the published entry ${finalDir} is unreadable`);
    progress({ phase: "done", message: image.path, fraction: 1 });
    return image;
  }, { onWait: (pid) => progress({ phase: "wait", message: `waiting for the build in process ${pid}` }) });
}

/**
 * The image `name` for the current recipe, agent and arch, building it when it is not cached.
 * Cached calls cost the agent hash and a stat.
 */
export async function ensureImage(name: string, options: Omit<BuildImageOptions, "force"> = {}): Promise<ImageInfo> {
  return buildImage(name, options);
}

