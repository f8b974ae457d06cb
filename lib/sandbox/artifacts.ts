/**
 * The kernel and root image a sandbox boots from. `create` resolves them once and records the
 * absolute paths on the sandbox, so a later `start` boots exactly the same files even after the
 * caches move on (and `prune` can see what is still in use).
 */
import { existsSync } from "node:fs";
import { resolve } from "node:path";
import type { SandboxConfig } from "../config.ts";
import { NotFoundError } from "../errors.ts";

export interface PrepareProgress {
  phase: string;
  message: string;
  fraction?: number;
}

export interface Artifacts {
  kernelPath: string;
  rootfsPath: string;
}

export async function prepareArtifacts(
  config: SandboxConfig,
  onProgress: (progress: PrepareProgress) => void = () => {},
): Promise<Artifacts> {
  const { hostGuestArch } = await import("../kernel/arch.ts");
  const arch = hostGuestArch();
  if (config.kernelPath === undefined && config.rootfsPath === undefined) {
    // Published artifacts when this version's release has them, else local builds.
    const { resolveArtifacts } = await import("../published/resolve.ts");
    const { kernelPath, rootfsPath } = await resolveArtifacts(config.image, arch, { onProgress });
    return { kernelPath, rootfsPath };
  }
  const kernelPath = config.kernelPath !== undefined
    ? existing(config.kernelPath, "kernel", "pass a path to an uncompressed vmlinux (x86_64) or Image (aarch64)")
    : await (await import("../kernel/build.ts")).ensureKernel(arch, {
      onProgress: (p) => onProgress({ phase: "kernel", message: `kernel: ${p.message}`, ...(p.fraction === undefined ? {} : { fraction: p.fraction }) }),
    });
  const rootfsPath = config.rootfsPath !== undefined
    ? existing(config.rootfsPath, "root filesystem", "pass a path to an ext4 image file")
    : (await (await import("../images/index.ts")).ensureImage(config.image, {
      arch,
      onProgress: (p: { message: string; fraction?: number }) =>
        onProgress({ phase: "image", message: `image ${config.image}: ${p.message}`, ...(p.fraction === undefined ? {} : { fraction: p.fraction }) }),
    })).path;
  return { kernelPath, rootfsPath };
}

function existing(path: string, what: string, hint: string): string {
  const absolute = resolve(path);
  if (!existsSync(absolute)) throw new NotFoundError(`Cannot use the ${what} "${path}": no such file`, { hint });
  return absolute;
}
