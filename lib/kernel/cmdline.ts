/**
 * The guest kernel command line. Pure: the caller passes the host TSC frequency (see
 * `hostTscKhz` in lib/backends/accel.ts).
 *
 * Every option here was measured (see the project's host facts):
 * - `console=` names the one serial port the machine has (8250 on x86 microvm, PL011 on arm virt).
 * - `reboot=t panic=-1`: microvm runs with acpi=off, so poweroff cannot end QEMU; the guest
 *   shuts down with `reboot -f`, which triple-faults, and QEMU's `-no-reboot` turns that into an
 *   exit. A panic does the same at once instead of hanging.
 * - `quiet` saves ~0.35 s under emulation (every console line is emulated serial I/O);
 *   `SMOLVM_VERBOSE_BOOT=1` keeps the chatter for debugging.
 * - Under TCG on x86, `tsc_early_khz=<host kHz> tsc=reliable no_timer_check` stops the TSC
 *   calibration that otherwise fails and hangs some boots forever.
 */
import type { GuestArch } from "./arch.ts";

/** Where images put the guest agent, which the kernel runs as PID 1. */
export const AGENT_GUEST_PATH = "/sbin/smolvm-agent";

export interface KernelCmdlineOptions {
  arch: GuestArch;
  /** Keep boot messages on the console; default: `SMOLVM_VERBOSE_BOOT=1`. */
  verbose?: boolean;
  /**
   * The host TSC frequency in kHz. Pass it when the guest runs under TCG emulation on x86_64
   * (see `hostTscKhz` in lib/backends/accel.ts); leave it out under KVM/HVF, where the TSC calibrates normally.
   */
  tscKhz?: number;
  /** PID 1 in the guest; default the agent. The floor benchmark image uses `/init`. */
  init?: string;
  /** Root block device; default `/dev/vda`, the first virtio-blk disk. */
  root?: string;
  /**
   * The VMM the guest runs under; default qemu. It names the serial console on aarch64, where
   * QEMU's virt machine has a PL011 (ttyAMA0) and Firecracker a 16550 (ttyS0).
   */
  vmm?: "qemu" | "firecracker";
  /** Appended verbatim, e.g. the agent's network settings. */
  extra?: readonly string[];
}

/** The command line as an argument list; join with spaces for `-append`. */
export function kernelCmdlineArgs(options: KernelCmdlineOptions): string[] {
  const verbose = options.verbose ?? process.env.SMOLVM_VERBOSE_BOOT === "1";
  const args: string[] = [];
  if (options.arch === "x86_64") args.push("console=ttyS0", "reboot=t");
  else args.push(options.vmm === "firecracker" ? "console=ttyS0" : "console=ttyAMA0");
  args.push(
    "panic=-1",
    `root=${options.root ?? "/dev/vda"}`,
    "rw",
    "rootfstype=ext4",
    `init=${options.init ?? AGENT_GUEST_PATH}`,
  );
  if (!verbose) args.push("quiet");
  if (options.arch === "x86_64" && options.tscKhz !== undefined) {
    if (!Number.isInteger(options.tscKhz) || options.tscKhz <= 0) {
      throw new RangeError(`tscKhz must be a positive integer, got ${options.tscKhz}`);
    }
    // noapictimer: TCG's local APIC timer fails the kernel's verification anyway (the PIT
    // drives the clock), and skipping its calibration saves ~0.3 s of every boot.
    args.push(`tsc_early_khz=${options.tscKhz}`, "tsc=reliable", "no_timer_check", "noapictimer");
  }
  for (const arg of options.extra ?? []) {
    if (/\s/.test(arg) || arg === "") throw new RangeError(`kernel argument "${arg}" must be one non-empty word`);
    args.push(arg);
  }
  return args;
}

/**
 * The kernel command line, e.g.
 * `console=ttyS0 reboot=t panic=-1 root=/dev/vda rw rootfstype=ext4 init=/sbin/smolvm-agent quiet
 * tsc_early_khz=2199998 tsc=reliable no_timer_check`.
 */
export function kernelCmdline(options: KernelCmdlineOptions): string {
  return kernelCmdlineArgs(options).join(" ");
}
