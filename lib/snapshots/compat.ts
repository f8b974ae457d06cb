/**
 * Whether this host can restore a snapshot, and whether a warm template fits what a create
 * asks for. A restore must run the same VMM build, arch and accelerator the state was saved
 * with, on the same kernel build, over the same image; anything else is refused with the reason
 * (a VMM given state it did not write may crash or corrupt the guest, and nothing says so).
 * Checks are cheap on the hot path: a file's size and mtime, the VMM binary's fingerprint; only
 * a kernel whose stamp moved is hashed again.
 */
import { accelFor } from "../backends/accel.ts";
import { backendFor } from "../backends/select.ts";
import type { BackendName } from "../backends/types.ts";
import type { SandboxConfig } from "../config.ts";
import { hostGuestArch } from "../kernel/arch.ts";
import { sameStamp, sha256File } from "./_files.ts";
import type { SnapshotManifest } from "./manifest.ts";

/** Why this host cannot restore `manifest`, or undefined when it can. */
export async function restoreRefusal(manifest: SnapshotManifest): Promise<string | undefined> {
  const arch = hostGuestArch();
  if (manifest.arch !== arch) return `it holds an ${manifest.arch} guest and this host runs ${arch} guests`;
  const backend = backendFor(manifest.backend);
  if (backend.snapshots === undefined) return `the ${backend.name} backend cannot restore snapshots yet`;
  const build = await backend.snapshots.build(arch, manifest.vmm);
  if (build.version !== manifest.vmm.version) return `it was made by ${manifest.vmm.version}, and this host has ${build.version}`;
  if (!(await sameKernel(manifest))) return `the kernel it was made with ("${manifest.kernel.path}") is gone or was rebuilt`;
  if (!sameStamp(manifest.image)) return `its image "${manifest.image.name}" ("${manifest.image.path}") is gone or was rebuilt`;
  const accel = await accelFor({ guestArch: arch, requested: manifest.config.accel, kernelPath: manifest.kernel.path });
  if (accel.accel !== manifest.accel) return `it was saved under ${manifest.accel} and this host runs guests under ${accel.accel}`;
  return undefined;
}

async function sameKernel(manifest: SnapshotManifest): Promise<boolean> {
  if (sameStamp(manifest.kernel)) return true;
  try {
    return (await sha256File(manifest.kernel.path)).sha256 === manifest.kernel.sha256;
  } catch {
    return false;
  }
}

/**
 * Whether a warm template is the sandbox `config` asks for (its kernel and image resolved
 * already), on the backend the create chose: same kernel and image files, memory, vCPUs, disk
 * size, boot arguments, network and disk mode. Anything else boots cold.
 */
export function templateFits(manifest: SnapshotManifest, config: SandboxConfig, backend: BackendName): boolean {
  const t = manifest.config;
  return manifest.kind === "template" && manifest.backend === backend &&
    manifest.kernel.path === config.kernelPath && manifest.image.path === config.rootfsPath &&
    t.memoryMiB === config.memoryMiB && t.vcpus === config.vcpus && t.diskSizeMiB === config.diskSizeMiB &&
    t.bootArgs === config.bootArgs && t.network === config.network && t.diskMode === config.diskMode &&
    t.backend === config.backend && t.accel === config.accel;
}
