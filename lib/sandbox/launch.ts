/**
 * How a sandbox's VMM is launched from its record: the disk, the kernel command line, the
 * network (prepared by lib/network) and the accelerator; the backend starts it, and its ticket
 * (lib/backends/types.ts) is written into the sandbox's directory for the owner that takes it over.
 *
 * Create and start run this in the caller's process and hand the VMM to the supervisor with the
 * ticket, so the guest boots while the supervisor process starts (a few hundred milliseconds of
 * its own); a supervisor that finds no live VMM to attach to runs it itself.
 */
import { rmSync, writeFileSync } from "node:fs";
import { type AccelInfo, accelFor, hostTscKhz } from "../backends/accel.ts";
import { FIRECRACKER_ACCEL_REASON } from "../backends/firecracker/backend.ts";
import { backendFor } from "../backends/select.ts";
import type { Backend, LaunchSpec, Vmm } from "../backends/types.ts";
import { hostGuestArch } from "../kernel/arch.ts";
import { kernelCmdline } from "../kernel/cmdline.ts";
import { InvalidInputError, smolError, toSmolError } from "../errors.ts";
import { logEvent } from "../log.ts";
import { parsePolicy, prepareNetwork, reclaimNetwork, type SandboxNetwork } from "../network/index.ts";
import { withStore } from "../state/sandboxes.ts";
import type { SandboxRecord } from "../state/record.ts";
import { sandboxFiles, type SandboxFiles } from "./layout.ts";
import { writeTicket } from "./ticket.ts";

/** The record's part the network works from. */
export function sandboxNetworkOf(vm: SandboxRecord): SandboxNetwork {
  return {
    id: vm.id,
    mode: vm.config.network,
    dir: sandboxFiles(vm.id).dir,
    policy: parsePolicy(vm.config),
    ip: vm.ip,
    sshPort: vm.sshPort,
    dnsPort: vm.dnsPort,
  };
}

/**
 * The sandbox's record with what its network mode needs allocated: rows of an older smolvm may
 * lack a DNS port. Only the allocations are taken from the store: `vm` may carry a one-boot
 * override (the accelerator) the row does not.
 */
export function withNetworkAllocations(vm: SandboxRecord): SandboxRecord {
  const row = withStore((store) => store.completeNetworkAllocations(vm.id));
  return { ...vm, ip: row.ip, sshPort: row.sshPort, dnsPort: row.dnsPort };
}

/**
 * Launches the VMM for `vm`, records its pid and writes its ticket. The sandbox's network is
 * prepared first (lib/network: a namespace's rules, or a TAP interface and its rules) and the VMM
 * wired to it; its supervisor connects the rest once the VMM runs. A launch that fails removes
 * what the network's preparation made.
 */
export async function launchVmm(vm: SandboxRecord, files: SandboxFiles, backend: Backend = backendFor(vm.backend ?? "qemu")): Promise<Vmm> {
  return startVmm(vm, files, backend, undefined, (spec) => backend.launch(spec));
}

/**
 * Says that the VM of this sandbox is being restored from `from`: the supervisor that takes it
 * over waits for it (never boots one of its own) and gives the guest its own identity before it
 * runs anything else. Written before the supervisor starts.
 */
export function writeRestoreMarker(files: SandboxFiles, from: { dir: string }): void {
  writeFileSync(files.restoreMarker, `${JSON.stringify({ from: from.dir, at: Date.now() })}\n`, { mode: 0o600 });
}

/**
 * Starts the VMM for `vm` from a snapshot (its restore marker written already): its disk from the
 * snapshot's layer, its machine from the state in `from.dir`, its network its own (prepared as
 * for a launch). Resolves with the VM paused.
 */
export async function restoreVmm(
  vm: SandboxRecord,
  files: SandboxFiles,
  from: { dir: string; layer: string },
  backend: Backend = backendFor(vm.backend ?? "qemu"),
): Promise<Vmm> {
  return startVmm(vm, files, backend, from.layer, (spec) => backend.restore(spec, from.dir));
}

async function startVmm(
  vm: SandboxRecord,
  files: SandboxFiles,
  backend: Backend,
  layer: string | undefined,
  start: (spec: LaunchSpec) => Promise<Vmm>,
): Promise<Vmm> {
  const arch = hostGuestArch();
  // Not the backend's full probe: its `qemu -version` costs 110-140 ms on every boot under
  // TCG, and a missing or broken QEMU is reported by the launch itself, with QEMU's own words.
  // The KVM proof is one boot per host boot, cached. Firecracker has KVM or nothing: without
  // it, its launch says so in its own words.
  const accel: AccelInfo = backend.name === "firecracker"
    ? firecrackerAccel(vm)
    : await accelFor({ guestArch: arch, requested: vm.config.accel, kernelPath: vm.config.kernelPath! });
  if (vm.config.jailer === true && backend.name !== "firecracker") {
    throw new InvalidInputError(`Cannot boot sandbox "${vm.name}" under a jailer on the ${backend.name} backend: only Firecracker has one`, {
      hint: "create the sandbox on the firecracker backend, or without the jailer",
    });
  }
  vm = withNetworkAllocations(vm);
  const disk = await backend.prepareDisk({
    imagePath: vm.config.rootfsPath!,
    vmDir: files.dir,
    mode: vm.config.diskMode,
    ...(vm.config.diskSizeMiB === undefined ? {} : { sizeMiB: vm.config.diskSizeMiB }),
    ...(layer === undefined ? {} : { layer }),
  });
  const tscKhz = accel.accel === "tcg" && arch === "x86_64" ? hostTscKhz() : undefined;
  rmSync(files.consoleLog, { force: true });
  const network = await prepareNetwork(sandboxNetworkOf(vm)).catch((error: unknown) => {
    // Marked, so the boot's failure keeps the network's own hint (what to remove, what to install).
    const failure = toSmolError(error);
    throw smolError(failure.code, failure.message, { ...(failure.hint === undefined ? {} : { hint: failure.hint }), details: { ...failure.details, stage: "network" }, cause: error });
  });
  try {
    const vmm = await start({
      arch,
      id: vm.id,
      ...(vm.cid === null ? {} : { guestCid: vm.cid }),
      accel: accel.accel,
      accelReason: accel.reason,
      vcpus: vm.config.vcpus,
      memoryMiB: vm.config.memoryMiB,
      kernelPath: vm.config.kernelPath!,
      cmdline: [
        kernelCmdline({ arch, vmm: backend.name, ...(tscKhz === undefined ? {} : { tscKhz }), extra: [`smolvm.hostname=${vm.name}`, ...network.kernelArgs] }),
        vm.config.bootArgs,
      ].filter(Boolean).join(" "),
      disk,
      network: network.netdev,
      ...(network.launchPrefix.length === 0 ? {} : { launchPrefix: network.launchPrefix }),
      agentSocketPath: files.agentSocket,
      controlSocketPath: files.controlSocket,
      serialLogPath: files.consoleLog,
      vmmLogPath: files.vmmLog,
      ...(vm.config.jailer === true ? { jailed: true } : {}),
      // Recorded the moment it exists, before its control API answers (or the launcher dies).
      onProcess: (pid) => withStore((store) => store.update(vm.id, { vmmPid: pid })),
    });
    writeTicket(files, vmm.ticket);
    withStore((store) => store.update(vm.id, { vmmPid: vmm.pid }));
    return vmm;
  } catch (error) {
    await reclaimNetwork({ id: vm.id, dir: files.dir, mode: vm.config.network }).catch((cleanupError: Error) =>
      logEvent("error", `cannot remove the network of sandbox "${vm.name}" after its failed launch: ${cleanupError.message}`, { sandbox: vm.id }));
    throw error;
  }
}

/** Firecracker runs on KVM only: a sandbox that asks for another accelerator is refused by name. */
function firecrackerAccel(vm: SandboxRecord): AccelInfo {
  const requested = vm.config.accel !== "auto" ? vm.config.accel : process.env.SMOLVM_ACCEL;
  if (requested !== undefined && requested !== "" && requested !== "auto" && requested !== "kvm") {
    throw new InvalidInputError(`Cannot boot sandbox "${vm.name}" with accel "${requested}" on the firecracker backend: Firecracker runs guests on KVM only`, {
      hint: "leave the accelerator to auto (or kvm), or create the sandbox with --backend qemu",
    });
  }
  return { accel: "kvm", reason: FIRECRACKER_ACCEL_REASON };
}
