/**
 * Starting a sandbox's VMM, or attaching to one that runs already. `create` and `start` launch
 * the VMM themselves and only then start the supervisor, which attaches: the guest boots while
 * the supervisor process starts up, instead of after it.
 */
import { existsSync, rmSync } from "node:fs";
import { resolve } from "node:path";
import { accelFor, hostTscKhz, type Accel, type GuestArch } from "../backends/accel.ts";
import { qemuBackend } from "../backends/qemu.ts";
import type { PreparedDisk, VmmControl } from "../backends/types.ts";
import { pidAlive } from "../host/pids.ts";
import { hostGuestArch } from "../kernel/arch.ts";
import { kernelCmdline } from "../kernel/cmdline.ts";
import { withStore, type VmRecord } from "../state/vms.ts";
import type { VmFiles } from "./layout.ts";

/** The guest's address on QEMU's user-mode network (slirp's fixed defaults). */
const USER_NET = { ip: "10.0.2.15/24", gw: "10.0.2.2", dns: "10.0.2.3" };

export interface Vmm {
  pid: number;
  control: VmmControl;
  exited: Promise<unknown>;
  kill(): void;
}

/** The file a sandbox's VM writes its disk to: the image itself when shared, else its overlay. */
export function writableDiskOf(vm: VmRecord, files: VmFiles): string {
  return vm.config.diskMode === "shared" ? resolve(vm.config.rootfsPath!) : files.overlay;
}

/** Whether a VMM of this sandbox runs that can be attached to. */
export function vmmRunning(vm: VmRecord, files: VmFiles): boolean {
  return pidAlive(vm.vmmPid) && existsSync(files.controlSocket);
}

export async function attachVmm(vm: VmRecord, files: VmFiles): Promise<Vmm> {
  const pid = vm.vmmPid!;
  const control = await qemuBackend.attach(files.controlSocket);
  // The monitor hangs up when QEMU ends: a prompt signal; the pid poll is the backstop.
  const exited = Promise.race([control.disconnected.then(() => waitForPidExit(pid, 2)), waitForPidExit(pid, 50)]);
  return { pid, control, exited, kill: () => killQuietly(pid) };
}

/**
 * Launches the VMM for `vm`, records its pid, and returns it. Moves to another SSH port when
 * another smolvm home took ours between allocation and QEMU's bind.
 */
export async function launchVmm(vm: VmRecord, files: VmFiles): Promise<Vmm> {
  const arch = hostGuestArch();
  // Not the backend's full probe: its `qemu -version` costs 110-140 ms on every boot under
  // TCG, and a missing or broken QEMU is reported by the launch itself, with QEMU's own words.
  // The KVM proof is one boot per host boot, cached.
  const { accel } = await accelFor({ guestArch: arch, requested: vm.config.accel, kernelPath: vm.config.kernelPath! });
  const disk = await qemuBackend.prepareDisk({
    imagePath: vm.config.rootfsPath!,
    vmDir: files.dir,
    mode: vm.config.diskMode,
    ...(vm.config.diskSizeMiB === undefined ? {} : { sizeMiB: vm.config.diskSizeMiB }),
  });
  const tscKhz = accel === "tcg" && arch === "x86_64" ? hostTscKhz() : undefined;
  const network = vm.config.network === "none" ? [] : [`smolvm.ip=${USER_NET.ip}`, `smolvm.gw=${USER_NET.gw}`, `smolvm.dns=${USER_NET.dns}`];
  const cmdline = [
    kernelCmdline({ arch, ...(tscKhz === undefined ? {} : { tscKhz }), extra: [`smolvm.hostname=${vm.name}`, ...network] }),
    vm.config.bootArgs,
  ].filter(Boolean).join(" ");
  rmSync(files.consoleLog, { force: true });
  for (let attempt = 1; ; attempt++) {
    try {
      const vmm = await launch(vm, files, arch, accel, cmdline, disk);
      withStore((store) => store.updateVm(vm.id, { vmmPid: vmm.pid }));
      return vmm;
    } catch (error) {
      if (attempt >= 5 || vm.sshPort === null || !/host forwarding rule/.test((error as Error).message)) throw error;
      const taken = vm.sshPort;
      vm = withStore((store) => store.reallocateSshPort(vm.id, taken));
    }
  }
}

async function launch(vm: VmRecord, files: VmFiles, arch: GuestArch, accel: Accel, cmdline: string, disk: PreparedDisk): Promise<Vmm> {
  const launched = await qemuBackend.launch({
    arch,
    accel,
    vcpus: vm.config.vcpus,
    memoryMiB: vm.config.memoryMiB,
    kernelPath: vm.config.kernelPath!,
    cmdline,
    disk,
    network: vm.config.network === "none"
      ? { mode: "none" }
      : { mode: "user", hostForwards: vm.sshPort === null ? [] : [{ hostPort: vm.sshPort, guestPort: 22 }] },
    agentSocketPath: files.agentSocket,
    controlSocketPath: files.controlSocket,
    serialLogPath: files.consoleLog,
    vmmLogPath: files.vmmLog,
  });
  return { pid: launched.pid, control: launched.control, exited: launched.exited, kill: () => launched.kill("SIGKILL") };
}


export async function waitForPidExit(pid: number, intervalMs = 50): Promise<void> {
  while (pidAlive(pid)) await new Promise((resolve) => setTimeout(resolve, intervalMs));
}

export function killQuietly(pid: number): void {
  try {
    process.kill(pid, "SIGKILL");
  } catch {
    // Already gone.
  }
}
