/**
 * Building the guest kernel into the content-addressed cache:
 *
 *   <kernelsDir>/<arch>-<key16>/{vmlinux|Image, config, build.log, manifest.json, recipe/}
 *
 * The key hashes the pinned source checksum, build.sh and the config fragments (recipe.ts), so
 * changing any of them builds a new kernel beside the old one. A build runs in a temp dir next
 * to its final place and is published by one rename; while it runs its log is at
 * <kernelsDir>/.logs/<arch>-<key16>.log, where it stays if the build fails.
 */
import { availableParallelism } from "node:os";
import { chmod, mkdir, rename, rm, writeFile } from "node:fs/promises";
import { dirname, join } from "node:path";
import { paths } from "../paths.ts";
import { CommandFailedError, SmolError } from "../errors.ts";
import { exists, buildInto, withLock } from "../util/cache-lock.ts";
import { runLogged } from "../util/run-logged.ts";
import { hostGuestArch, type GuestArch } from "./arch.ts";
import { KERNEL_BUILDER_VERSION, kernelDirName, kernelInputs, kernelKey, recipeKey } from "./recipe.ts";
import { resolveKernelSource } from "./source.ts";
import { findKernel, readKernelManifest, type KernelInfo, type KernelManifest } from "./cache.ts";

export type KernelBuildPhase = "verify" | "wait" | "extract" | "configure" | "compile" | "install" | "done";

export interface KernelProgress {
  phase: KernelBuildPhase;
  message: string;
  /** 0..1 over the whole build, an estimate during `compile` (from the count of make lines). */
  fraction?: number;
  /** Output lines seen so far. */
  lines?: number;
}

export interface BuildKernelOptions {
  arch?: GuestArch;
  /** A Linux source tarball of the user's choosing; default the Debian package's, verified by dpkg. */
  source?: string;
  /** Parallel make jobs; default the number of CPUs. */
  jobs?: number;
  /** Rebuild even when the cache has this kernel. */
  force?: boolean;
  onProgress?: (progress: KernelProgress) => void;
  /** Every line of build output (it also goes to the build log file). */
  log?: (line: string) => void;
}

/**
 * Roughly how many `  CC foo.o`-style lines a build prints, for the progress estimate. Measured
 * on the first builds; a wrong value only makes the bar move unevenly (it is capped below 1).
 */
const EXPECTED_COMPILE_LINES: Record<GuestArch, number> = { x86_64: 1610, aarch64: 1610 };
const KBUILD_LINE = /^\s{2}[A-Z][A-Z0-9_]*\s+\S/;

/** Builds (or, unless `force`, finds in the cache) the kernel for `arch`. */
export async function buildKernel(options: BuildKernelOptions = {}): Promise<KernelInfo> {
  const arch = options.arch ?? hostGuestArch();
  const progress = options.onProgress ?? (() => {});

  progress({ phase: "verify", message: `checking ${options.source ?? "the kernel source package"}`, fraction: 0 });
  const source = await resolveKernelSource(options.source);
  const inputs = kernelInputs(arch);
  const key = kernelKey(inputs, source.id);
  const dirName = kernelDirName(arch, key);
  const finalDir = join(paths.kernelsDir(), dirName);
  const artifactPath = join(finalDir, inputs.artifact);

  return withLock(join(paths.kernelsDir(), `.lock-${dirName}`), async () => {
    if (!options.force && (await exists(artifactPath))) {
      progress({ phase: "done", message: `cached: ${artifactPath}`, fraction: 1 });
      return readKernelManifest(finalDir);
    }
    const started = Date.now();
    const logPath = join(paths.kernelsDir(), ".logs", `${dirName}.log`);
    await mkdir(dirname(logPath), { recursive: true });
    await writeFile(logPath, `smolvm kernel build ${dirName} from ${source.description}\n`);
    try {
      await buildInto(paths.kernelsDir(), dirName, finalDir, { replace: options.force === true }, async (tempDir) => {
        const recipeDir = join(tempDir, "recipe");
        for (const [name, text] of Object.entries(inputs.files)) {
          await mkdir(dirname(join(recipeDir, name)), { recursive: true });
          await writeFile(join(recipeDir, name), text);
        }
        await chmod(join(recipeDir, "build.sh"), 0o755);

        let lines = 0;
        let compiled = 0;
        const expected = EXPECTED_COMPILE_LINES[arch];
        await runLogged("bash", [
          join(recipeDir, "build.sh"),
          "--arch", arch,
          "--source", source.path,
          "--out", tempDir,
          "--jobs", String(options.jobs ?? availableParallelism()),
        ], {
          logPath,
          action: `Cannot build the ${arch} kernel`,
          onLine: (line) => {
            lines++;
            options.log?.(line);
            if (line.startsWith("==> extracting")) progress({ phase: "extract", message: line.slice(4), fraction: 0.01, lines });
            else if (line.startsWith("==> configuring")) progress({ phase: "configure", message: line.slice(4), fraction: 0.05, lines });
            else if (KBUILD_LINE.test(line)) {
              compiled++;
              const fraction = 0.06 + 0.92 * Math.min(compiled / expected, 0.99);
              progress({ phase: "compile", message: line.trim(), fraction, lines });
            }
          },
        });
        await rm(join(tempDir, "src"), { recursive: true, force: true });

        progress({ phase: "install", message: `publishing ${dirName}`, fraction: 0.99, lines });
        const manifest: KernelManifest = {
          arch,
          key,
          recipeKey: recipeKey(inputs),
          artifact: inputs.artifact,
          source: {
            id: source.id,
            description: source.description,
            ...(source.package === undefined ? {} : { package: source.package, version: source.version }),
          },
          builderVersion: KERNEL_BUILDER_VERSION,
          builtAt: new Date().toISOString(),
          buildSeconds: Math.round((Date.now() - started) / 1000),
        };
        await writeFile(join(tempDir, "manifest.json"), JSON.stringify(manifest, null, 2) + "\n");
        await rename(logPath, join(tempDir, "build.log"));
      });
    } catch (error) {
      if (error instanceof SmolError) throw error;
      throw new CommandFailedError(`Cannot build the ${arch} kernel: ${(error as Error).message}`, {
        cause: error,
        hint: `the build log is ${logPath}`,
      });
    }
    progress({ phase: "done", message: artifactPath, fraction: 1 });
    return readKernelManifest(finalDir);
  }, {
    onWait: (pid) => progress({ phase: "wait", message: `waiting for build in process ${pid}` }),
  });
}

/**
 * The kernel image path for `arch` (`vmlinux` on x86_64, `Image` on aarch64), building it first
 * when the cache has none for the current recipe. A build takes 10-15 minutes on 2 cores.
 */
export async function ensureKernel(
  arch: GuestArch = hostGuestArch(),
  options: Omit<BuildKernelOptions, "arch" | "force"> = {},
): Promise<string> {
  const cached = await findKernel(arch);
  if (cached) return cached;
  return (await buildKernel({ ...options, arch })).path;
}
