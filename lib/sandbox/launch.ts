/**
 * How a sandbox's VMM is launched from its record: the disk, the kernel command line, the
 * network and the accelerator; the backend starts it, and its ticket (lib/backends/types.ts) is
 * written into the sandbox's directory for the owner that takes it over.
 *
 * Create and start run this in the caller's process and hand the VMM to the supervisor with the
 * ticket, so the guest boots while the supervisor process starts (a few hundred milliseconds of
 * its own); a supervisor that finds no live VMM to attach to runs it itself.
 */
import { rmSync } from "node:fs";
import { accelFor, hostTscKhz } from "../backends/accel.ts";
import { backendFor } from "../backends/select.ts";
import type { Backend, LaunchNetwork, Vmm } from "../backends/types.ts";
import type { SandboxConfig } from "../config.ts";
import { InvalidInputError } from "../errors.ts";
import { hostGuestArch } from "../kernel/arch.ts";
import { kernelCmdline } from "../kernel/cmdline.ts";
import { withStore, type SandboxRecord } from "../state/sandboxes.ts";
import type { SandboxFiles } from "./layout.ts";
import { writeTicket } from "./ticket.ts";

/** The guest's address on QEMU's user-mode network (slirp's fixed defaults). */
const USER_NET = { ip: "10.0.2.15/24", gw: "10.0.2.2", dns: "10.0.2.3" };

/**
 * Refuses a config this build cannot run, before anything is allocated for it. Network modes
 * are enabled here as they land (`tap` with the networking work).
 */
export function checkRunnable(config: Pick<SandboxConfig, "network" | "name">): void {
  if (config.network === "tap") {
    throw new InvalidInputError(`Cannot create sandbox${config.name === undefined ? "" : ` "${config.name}"`} with network "tap": TAP networking is not available in this build yet`, {
      hint: 'leave the network out for the default ("user"), or use "none" for no network',
    });
  }
}

/** The guest network the VMM wires, and what the guest is told about it on its command line. */
export function launchNetwork(vm: SandboxRecord): { network: LaunchNetwork; cmdline: string[] } {
  switch (vm.config.network) {
    case "none":
      return { network: { mode: "none" }, cmdline: [] };
    case "user":
      return {
        network: { mode: "user", hostForwards: vm.sshPort === null ? [] : [{ hostPort: vm.sshPort, guestPort: 22 }] },
        cmdline: [`smolvm.ip=${USER_NET.ip}`, `smolvm.gw=${USER_NET.gw}`, `smolvm.dns=${USER_NET.dns}`],
      };
    case "tap":
      checkRunnable(vm.config);
      throw new Error("unreachable");
  }
}

/**
 * Launches the VMM for `vm`, records its pid and writes its ticket. Moves to another SSH port
 * when another smolvm home took ours between allocation and QEMU's bind.
 */
export async function launchVmm(vm: SandboxRecord, files: SandboxFiles, backend: Backend = backendFor(vm.backend ?? "qemu")): Promise<Vmm> {
  const arch = hostGuestArch();
  // Not the backend's full probe: its `qemu -version` costs 110-140 ms on every boot under
  // TCG, and a missing or broken QEMU is reported by the launch itself, with QEMU's own words.
  // The KVM proof is one boot per host boot, cached.
  const accel = await accelFor({ guestArch: arch, requested: vm.config.accel, kernelPath: vm.config.kernelPath! });
  const disk = await backend.prepareDisk({
    imagePath: vm.config.rootfsPath!,
    vmDir: files.dir,
    mode: vm.config.diskMode,
    ...(vm.config.diskSizeMiB === undefined ? {} : { sizeMiB: vm.config.diskSizeMiB }),
  });
  const tscKhz = accel.accel === "tcg" && arch === "x86_64" ? hostTscKhz() : undefined;
  rmSync(files.consoleLog, { force: true });
  for (let attempt = 1; ; attempt++) {
    const { network, cmdline } = launchNetwork(vm);
    try {
      const vmm = await backend.launch({
        arch,
        accel: accel.accel,
        accelReason: accel.reason,
        vcpus: vm.config.vcpus,
        memoryMiB: vm.config.memoryMiB,
        kernelPath: vm.config.kernelPath!,
        cmdline: [
          kernelCmdline({ arch, ...(tscKhz === undefined ? {} : { tscKhz }), extra: [`smolvm.hostname=${vm.name}`, ...cmdline] }),
          vm.config.bootArgs,
        ].filter(Boolean).join(" "),
        disk,
        network,
        agentSocketPath: files.agentSocket,
        controlSocketPath: files.controlSocket,
        serialLogPath: files.consoleLog,
        vmmLogPath: files.vmmLog,
        // Recorded the moment it exists, before its control API answers (or the launcher dies).
        onProcess: (pid) => withStore((store) => store.update(vm.id, { vmmPid: pid })),
      });
      writeTicket(files, vmm.ticket);
      withStore((store) => store.update(vm.id, { vmmPid: vmm.pid }));
      return vmm;
    } catch (error) {
      if (attempt >= 5 || vm.sshPort === null || !/host forwarding rule/.test((error as Error).message)) throw error;
      const taken = vm.sshPort;
      vm = withStore((store) => store.reallocateSshPort(vm.id, taken));
    }
  }
}

