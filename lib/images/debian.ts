/**
 * The Debian root filesystem stage: `mmdebstrap` into a tarball, cached on its own under
 * <imagesDir>/.rootfs/ so a new agent build only repeats the fast assembly step, never the
 * download and install of packages.
 *
 * mmdebstrap runs in its `auto` mode: `root` when smolvm runs as root, `unshare` (user
 * namespaces, no privileges) otherwise. The tarball keeps ownership and device nodes either way.
 */
import { rmSync } from "node:fs";
import { rename, rm, writeFile } from "node:fs/promises";
import { basename, dirname, join } from "node:path";
import { paths } from "../paths.ts";
import { HostDependencyMissingError } from "../errors.ts";
import { onInterrupt } from "../host/interrupt.ts";
import { which } from "../host/process.ts";
import { ensureForeignArch } from "../host/binfmt.ts";
import { hostExtraCaCertificates } from "../host/ca-certificates.ts";
import { debianArch, hostGuestArch, type GuestArch } from "../kernel/arch.ts";
import { exists, removeLeftovers, withLock } from "../util/cache-lock.ts";
import { debianSourceLines, readHostAptSources } from "./debian-mirror.ts";
import { runLogged } from "../util/run-logged.ts";
import { canonicalJson, IMAGE_BUILDER_VERSION, sha256Hex, type Recipe } from "./recipes.ts";
import { npmLayerScript, npmRegistry, parseInstallStep, shQuote } from "./npm-layer.ts";

type MmdebstrapRootfs = Extract<Recipe["rootfs"], { kind: "mmdebstrap" }>;

/** mmdebstrap's own progress markers, mapped to a 0..1 share of its run. */
const MILESTONES: Array<[RegExp, number, string]> = [
  [/^I: running apt-get update/, 0.05, "updating package lists"],
  [/^I: downloading packages/, 0.15, "downloading packages"],
  [/^I: extracting archives/, 0.35, "extracting packages"],
  [/^I: installing essential packages/, 0.45, "installing essential packages"],
  [/^I: installing remaining packages/, 0.6, "installing packages"],
  [/^I: cleaning package lists/, 0.8, "cleaning up"],
  [/^I: creating tarball/, 0.95, "writing the tarball"],
];

export interface DebianStageOptions {
  name: string;
  arch: GuestArch;
  rootfs: MmdebstrapRootfs;
  logPath: string;
  force?: boolean;
  onProgress?: (fraction: number, message: string) => void;
  onLine?: (line: string) => void;
}

export function debianStagePath(name: string, arch: GuestArch, rootfs: MmdebstrapRootfs): string {
  const key = sha256Hex(canonicalJson({ builder: IMAGE_BUILDER_VERSION, arch, rootfs }));
  return join(paths.imagesDir(), ".rootfs", `${name}-${arch}-${key.slice(0, 16)}.tar`);
}

/** The cached root filesystem tarball for the recipe, running mmdebstrap when there is none. */
export async function ensureDebianTarball(options: DebianStageOptions): Promise<string> {
  const tarball = debianStagePath(options.name, options.arch, options.rootfs);
  return withLock(`${tarball}.lock`, async () => {
    if (!options.force && (await exists(tarball))) return tarball;
    if (!which("mmdebstrap")) {
      throw new HostDependencyMissingError(`Cannot build image "${options.name}": mmdebstrap is not installed`, {
        hint: "install it with `apt-get install mmdebstrap` (or run `smolvm setup`)",
      });
    }
    if (options.arch !== hostGuestArch()) await ensureForeignArch(options.arch, `Cannot build image "${options.name}" for ${options.arch}`);
    const { rootfs } = options;
    const sources = debianSourceLines(rootfs.suite, rootfs.components, readHostAptSources(), process.env.SMOLVM_DEBIAN_MIRROR);
    await removeLeftovers(dirname(tarball), `${basename(tarball)}.`, (name) => name.endsWith(".partial.tar"));
    const partial = `${tarball}.${process.pid}.partial.tar`;
    const hookScript = `${tarball}.${process.pid}.npm-layer.sh`;
    const undoInterrupt = onInterrupt(() => {
      rmSync(partial, { force: true });
      rmSync(hookScript, { force: true });
    });
    try {
      const hooks: string[] = [];
      if (rootfs.npm) {
        // Run chrooted in the finished tree, with the host's network and resolv.conf (mmdebstrap
        // provides both to hooks), so packages' install scripts run on the guest's own Node.js.
        const extraCaPem = await hostExtraCaCertificates();
        await writeFile(hookScript, npmLayerScript({
          runtime: rootfs.npm.runtime,
          packages: rootfs.npm.packages,
          arch: options.arch,
          registry: npmRegistry(),
          ...(extraCaPem === undefined ? {} : { extraCaPem }),
        }), { mode: 0o600 });
        hooks.push(`--customize-hook=chroot "$1" /bin/sh -s < ${shQuote(hookScript)}`);
      }
      await runLogged("mmdebstrap", [
        "--mode=auto",
        `--variant=${rootfs.variant}`,
        `--architectures=${debianArch(options.arch)}`,
        `--components=${rootfs.components.join(",")}`,
        ...(rootfs.include.length ? [`--include=${rootfs.include.join(",")}`] : []),
        "--format=tar",
        ...hooks,
        rootfs.suite,
        partial,
        ...sources,
      ], {
        logPath: options.logPath,
        action: `Cannot build image "${options.name}"`,
        onLine: (line) => {
          options.onLine?.(line);
          for (const [pattern, fraction, message] of MILESTONES) {
            if (pattern.test(line)) options.onProgress?.(fraction, message);
          }
          const step = parseInstallStep(line);
          if (step) options.onProgress?.(0.62 + (0.16 * (step.step - 1)) / step.steps, step.message);
        },
      });
      await rename(partial, tarball);
    } finally {
      undoInterrupt();
      await rm(partial, { force: true });
      await rm(hookScript, { force: true });
    }
    options.onProgress?.(1, "root filesystem ready");
    return tarball;
  }, { onWait: (pid) => options.onProgress?.(0, `waiting for the build in process ${pid}`) });
}

