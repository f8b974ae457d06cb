/**
 * Floors: the least this machine can do with the same kernel, disk setup and QEMU flags as a
 * sandbox, measured in the same run so ratios compare like with like.
 *
 * - QEMU start + quit: spawn with the vCPUs stopped, QMP `quit`, process gone.
 * - Boot: the floor image (its /init prints one line and reboots), spawn -> line on the console.
 * - Raw channel: the sandbox image booted with `/bin/sh -c SCRIPT` as PID 1 instead of the agent,
 *   streaming bytes straight through the virtio-serial port (no protocol, no framing).
 *
 * The launch spec mirrors what the supervisor builds (lib/supervisor/main.ts); `floorFlags` in
 * the report compares the resulting argv with a live sandbox's to prove it.
 */
import { readFileSync } from "node:fs";
import { mkdir, rm } from "node:fs/promises";
import { connect, type Socket } from "node:net";
import { join } from "node:path";
import { hostTscKhz, type Accel } from "../lib/backends/accel.ts";
import { qemuBackend, qemuSpecFor } from "../lib/backends/qemu/backend.ts";
import { qemuArgs } from "../lib/backends/qemu/args.ts";
import type { LaunchSpec, Vmm } from "../lib/backends/types.ts";
import { TimeoutError } from "../lib/errors.ts";
import type { GuestArch } from "../lib/kernel/arch.ts";
import { kernelCmdline } from "../lib/kernel/cmdline.ts";
import { guestKernelArgs, guestNetworkOf } from "../lib/network/index.ts";

/** The guest address settings a sandbox on the default (user) network gets. */
const USER_NET = guestKernelArgs(guestNetworkOf({ mode: "user", ip: null })!);

export interface FloorVm {
  arch: GuestArch;
  accel: Accel;
  vcpus: number;
  memoryMiB: number;
  kernelPath: string;
}

/** A sandbox-shaped launch spec in `dir`, with `init.path` as PID 1 and `init.args` appended to the kernel command line. */
export async function floorSpec(vm: FloorVm, dir: string, imagePath: string, init?: { path: string; args?: string }): Promise<LaunchSpec> {
  await mkdir(dir, { recursive: true });
  const disk = await qemuBackend.prepareDisk({ imagePath, vmDir: dir, mode: "isolated" });
  const tscKhz = vm.accel === "tcg" && vm.arch === "x86_64" ? hostTscKhz() : undefined;
  const base = kernelCmdline({
    arch: vm.arch,
    ...(tscKhz === undefined ? {} : { tscKhz }),
    ...(init === undefined ? {} : { init: init.path }),
    extra: ["smolvm.hostname=bench-floor", ...USER_NET],
  });
  return {
    arch: vm.arch,
    accel: vm.accel,
    vcpus: vm.vcpus,
    memoryMiB: vm.memoryMiB,
    kernelPath: vm.kernelPath,
    cmdline: init?.args === undefined ? base : `${base} ${init.args}`,
    disk,
    network: { mode: "user", hostForwards: [] },
    agentSocketPath: join(dir, "agent.sock"),
    controlSocketPath: join(dir, "qmp.sock"),
    serialLogPath: join(dir, "console.log"),
    vmmLogPath: join(dir, "vmm.log"),
  };
}

/** The argv QEMU gets for a launch spec (as QemuBackend.launch passes it). */
export function floorArgv(spec: LaunchSpec): string[] {
  return qemuArgs(qemuSpecFor(spec, spec.accel ?? "tcg"));
}

async function ended(vmm: Vmm): Promise<void> {
  vmm.kill();
  await vmm.exited;
}

/** QEMU spawn -> QMP ready -> quit -> process exit, with the guest never started. */
export async function qemuStartQuit(spec: LaunchSpec): Promise<number> {
  const started = performance.now();
  const vmm = await qemuBackend.launch({ ...spec, startPaused: true });
  try {
    await vmm.stop();
    await vmm.exited;
    return performance.now() - started;
  } finally {
    await ended(vmm);
  }
}

/** Polls a console log until a line containing `prefix` appears; resolves with the time seen and the line. */
export async function waitForConsoleLine(
  logPath: string,
  prefix: string,
  options: { deadline: number; exited?: Promise<unknown>; pollMs?: number },
): Promise<{ at: number; line: string }> {
  let gone = false;
  void options.exited?.then(() => (gone = true));
  for (;;) {
    let text = "";
    try {
      text = readFileSync(logPath, "utf8");
    } catch { /* not created yet */ }
    const line = text.split("\n").find((l) => l.includes(prefix));
    if (line !== undefined) return { at: performance.now(), line };
    if (gone || Date.now() > options.deadline) {
      throw new TimeoutError(`No "${prefix}" on the console of the floor VM (${gone ? "QEMU exited" : "timed out"})`, {
        hint: `see ${logPath}`,
      });
    }
    await new Promise((resolve) => setTimeout(resolve, options.pollMs ?? 2));
  }
}

/** The guest's boot clock in a floor init line (`... init reached at 0.812345 s`), in ms. */
export function parseFloorUptimeMs(line: string): number | undefined {
  const match = /at (\d+\.\d+) s/.exec(line);
  return match ? Number(match[1]) * 1000 : undefined;
}

/** Spawn -> the floor init's line on the serial console; also the guest's own clock then. */
export async function floorBoot(spec: LaunchSpec, readyPrefix: string, timeoutMs: number): Promise<{ ms: number; guestMs?: number }> {
  await rm(spec.serialLogPath, { force: true });
  const started = performance.now();
  const vmm = await qemuBackend.launch(spec);
  try {
    const seen = await waitForConsoleLine(spec.serialLogPath, readyPrefix, { deadline: Date.now() + timeoutMs, exited: vmm.exited });
    const guestMs = parseFloorUptimeMs(seen.line);
    return { ms: seen.at - started, ...(guestMs === undefined ? {} : { guestMs }) };
  } finally {
    await ended(vmm);
  }
}

export const RAW_DONE = "smolvm-raw-done";

/**
 * The shell program PID 1 runs for the raw channel floor: find the agent's virtio port, send
 * `bytes` zeros to the host, read `bytes` back, say done. `dd` moves 32 KiB blocks (the guest
 * driver's largest write; a read returns at most one page buffer, however large the block).
 * Written without double quotes and for any POSIX sh (busybox ash, dash), because it travels
 * on the kernel command line; `bytes` must be a multiple of 32 KiB.
 */
export function rawChannelScript(bytes: number): string {
  if (!Number.isInteger(bytes) || bytes <= 0 || bytes % 32768 !== 0) throw new RangeError(`bytes must be a positive multiple of 32768, got ${bytes}`);
  return [
    "mount -t proc proc /proc", "mount -t sysfs sysfs /sys", "mount -t devtmpfs devtmpfs /dev",
    // Read-only root: the VM is killed afterwards, which must not leave a journal to replay.
    "mount -o remount,ro /",
    "for p in /sys/class/virtio-ports/*; do [ $(cat $p/name) = org.smolvm.agent ] && port=/dev/${p##*/}; done",
    "echo smolvm-raw: port $port",
    "exec 3<>$port",
    `dd if=/dev/zero bs=32768 count=${bytes / 32768} 2>/dev/null >&3`,
    `dd bs=32768 count=${bytes / 32768} iflag=fullblock of=/dev/null 2>/dev/null <&3`,
    `echo ${RAW_DONE} >&3`,
    "echo smolvm-raw: done",
    "while :; do sleep 1000; done",
  ].join("; ");
}

/**
 * Kernel command-line words that make `/bin/sh -c SCRIPT` PID 1. Not after `--`: QEMU appends
 * the virtio-mmio device list to the command line, and after `--` the kernel would hand it to
 * init instead of finding its disks. So the script rides in an environment variable (a word
 * with `=` and no dot becomes init's environment) and the two words without `=` become init's
 * arguments; globbing stays off until the script itself turns it back on.
 */
export function rawChannelInit(bytes: number): { path: string; args: string } {
  return shellAsInit(rawChannelScript(bytes));
}

/** `/bin/sh -c SCRIPT` as PID 1 (see rawChannelInit for how the script rides the command line). */
export function shellAsInit(script: string): { path: string; args: string } {
  return { path: "/bin/sh", args: `SMOLVM_RAW="set +f; ${script}" -c "set -f; eval $SMOLVM_RAW"` };
}

/** Connects to a Unix socket that may not exist yet (QEMU creates it as it starts). */
async function connectRetrying(path: string, deadline: number): Promise<Socket> {
  for (;;) {
    try {
      return await new Promise<Socket>((resolve, reject) => {
        const socket = connect(path);
        socket.once("connect", () => {
          socket.removeAllListeners("error");
          resolve(socket);
        });
        socket.once("error", reject);
      });
    } catch (error) {
      if (Date.now() > deadline) throw error;
      await new Promise((resolve) => setTimeout(resolve, 5));
    }
  }
}

/**
 * Raw virtio-serial throughput in MB/s (10^6 bytes per second), both ways, with a guest that
 * streams from a shell: download timed from the first byte to the last, upload from the first
 * byte sent to the guest's "done" after it read them all.
 */
export async function rawChannel(spec: LaunchSpec, bytes: number, timeoutMs: number): Promise<{ uploadMBps: number; downloadMBps: number }> {
  return withRawPort(spec, timeoutMs, (sock, vmm, deadline) =>
    new Promise<{ uploadMBps: number; downloadMBps: number }>((resolve, reject) => {
      let received = 0;
      let firstByte = 0;
      let downloadMs = 0;
      let uploadStart = 0;
      let tail = "";
      const timer = setTimeout(() => reject(new TimeoutError(`The raw channel floor did not finish within ${timeoutMs} ms`, {
        hint: `see ${spec.serialLogPath}`,
      })), Math.max(1, deadline - Date.now()));
      void vmm.exited.then(() => reject(new Error("QEMU exited during the raw channel floor")));
      const upload = async () => {
        const chunk = Buffer.alloc(64 * 1024);
        uploadStart = performance.now();
        for (let sent = 0; sent < bytes; sent += chunk.length) {
          const piece = bytes - sent >= chunk.length ? chunk : chunk.subarray(0, bytes - sent);
          if (!sock.write(piece)) await new Promise((r) => sock.once("drain", r));
        }
      };
      sock.on("data", (data: Buffer) => {
        const now = performance.now();
        if (received === 0) firstByte = now;
        if (received < bytes) {
          const payload = Math.min(bytes - received, data.length);
          received += payload;
          if (received === bytes) {
            downloadMs = now - firstByte;
            upload().catch(reject);
          }
          data = data.subarray(payload);
        }
        if (data.length === 0) return;
        tail += data.toString("latin1");
        if (tail.includes(RAW_DONE)) {
          clearTimeout(timer);
          resolve({ uploadMBps: bytes / 1e6 / ((now - uploadStart) / 1000), downloadMBps: bytes / 1e6 / (downloadMs / 1000) });
        }
      });
      sock.on("error", reject);
    }));
}

/** Boots a floor guest whose PID 1 talks on the agent's port, runs `body` on that port, always ends the VM. */
export async function withRawPort<T>(spec: LaunchSpec, timeoutMs: number, body: (sock: Socket, vmm: Vmm, deadline: number) => Promise<T>): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  await rm(spec.serialLogPath, { force: true });
  const vmm = await qemuBackend.launch(spec);
  let socket: Socket | undefined;
  try {
    socket = await connectRetrying(spec.agentSocketPath, deadline);
    return await body(socket, vmm, deadline);
  } finally {
    socket?.destroy();
    await ended(vmm);
  }
}
