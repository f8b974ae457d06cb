/**
 * The QEMU command line for one sandbox, built from a plain spec with no effects, so every flag
 * is tested without starting QEMU.
 *
 * x86_64 guests run on `-M microvm` without ACPI (the RTC stays on: turning it off costs seconds of
 * boot) with virtio-mmio devices; QEMU itself appends the `virtio_mmio.device=` entries the kernel
 * needs to find them. Under kvm the PIT and PIC are off too: the guest ticks on the TSC-deadline
 * LAPIC timer. Under tcg they must stay on: the emulated CPU has no TSC-deadline timer, so Linux
 * needs a PIT (routed through the PIC) as its clock-event device, or to calibrate the LAPIC timer
 * against; with `pit=off` the guest boots but no timer ever fires (`sleep 1` and `reboot -f` hang
 * forever). aarch64 guests run on `-M virt` with virtio-mmio devices too: the guest kernel has no
 * PCI (kernel/config/arm64.config), the virt machine's device tree describes its mmio transports,
 * and Firecracker's arm64 machine is virtio-mmio as well.
 * The argv goes straight to spawn, never through a shell: the kernel command line is one element.
 */
import { InvalidInputError } from "../../errors.ts";
import type { Accel, GuestArch } from "../accel.ts";
import type { HostForward, LaunchNetwork } from "../types.ts";

/** The virtio-serial port name the guest agent looks for in /sys/class/virtio-ports/. */
export const AGENT_PORT_NAME = "org.smolvm.agent";
/** The id of the guest's network device, which HMP's hostfwd_add/remove refer to. */
export const NETDEV_ID = "net0";

/** QEMU wires every network mode of the launch spec (lib/backends/types.ts). */
export type QemuNetwork = LaunchNetwork;

export interface QemuDisk {
  path: string;
  format: "qcow2" | "raw";
  readOnly?: boolean;
}

export interface QemuSpec {
  arch: GuestArch;
  accel: Accel;
  vcpus: number;
  memoryMiB: number;
  /** An uncompressed PVH vmlinux on x86_64, an Image on aarch64. Absent: no -kernel (tests only). */
  kernelPath?: string;
  /** The whole kernel command line, passed as one argv element. */
  cmdline?: string;
  initrdPath?: string;
  /** The root disk, attached as the first virtio-blk device (/dev/vda). */
  disk?: QemuDisk;
  network: QemuNetwork;
  /** Unix socket (QEMU listens) for the agent's virtio-serial port. */
  agentSocketPath?: string;
  /** Unix socket (QEMU listens) for QMP. */
  qmpSocketPath: string;
  /** The guest's serial console is appended to this file. Absent: no serial port. */
  serialLogPath?: string;
  pidFile?: string;
  /** Start with the vCPUs stopped (`-S`); QMP `cont` starts them. */
  startPaused?: boolean;
  /** Restore from a migration stream, e.g. `exec:cat 'state.bin'` (see incomingFromFile). */
  incoming?: string;
  /** A virtio-rng device feeding the guest from the host's /dev/urandom. Default true. */
  rng?: boolean;
}

/** QEMU's option syntax doubles a comma inside a value. */
export function escapeOptionValue(value: string): string {
  return value.replaceAll(",", ",,");
}

/** The hostfwd rule text shared by -netdev user and HMP hostfwd_add: `tcp:127.0.0.1:2222-:22`. */
export function hostForwardRule(forward: HostForward): string {
  checkPort(forward.hostPort, "host port");
  checkPort(forward.guestPort, "guest port");
  const address = forward.hostAddress ?? "127.0.0.1";
  if (!/^[0-9a-fA-F.:]*$/.test(address)) {
    throw new InvalidInputError(`Cannot forward host port ${forward.hostPort}: "${address}" is not an IP address`);
  }
  return `${forward.protocol ?? "tcp"}:${address}:${forward.hostPort}-:${forward.guestPort}`;
}

function checkPort(port: number, what: string): void {
  if (!Number.isInteger(port) || port < 1 || port > 65535) {
    throw new InvalidInputError(`Cannot forward ${what} ${port}: a port is an integer from 1 to 65535`);
  }
}

function checkSpec(spec: QemuSpec): void {
  if (!Number.isInteger(spec.vcpus) || spec.vcpus < 1) {
    throw new InvalidInputError(`Cannot build the QEMU command line: vcpus is ${spec.vcpus}, expected an integer >= 1`);
  }
  if (!Number.isInteger(spec.memoryMiB) || spec.memoryMiB < 16) {
    throw new InvalidInputError(
      `Cannot build the QEMU command line: memoryMiB is ${spec.memoryMiB}, expected an integer >= 16`,
    );
  }
  if ((spec.cmdline !== undefined || spec.initrdPath !== undefined) && spec.kernelPath === undefined) {
    throw new InvalidInputError("Cannot build the QEMU command line: a kernel command line or initrd needs a kernel");
  }
  const mac = spec.network.mode === "none" ? undefined : spec.network.mac;
  if (mac !== undefined && !/^([0-9a-f]{2}:){5}[0-9a-f]{2}$/i.test(mac)) {
    throw new InvalidInputError(`Cannot build the QEMU command line: "${mac}" is not a MAC address`);
  }
}

/** The argv (without the program itself) that starts the sandbox described by `spec`. */
export function qemuArgs(spec: QemuSpec): string[] {
  checkSpec(spec);
  const x86 = spec.arch === "x86_64";
  // virtio-mmio devices on both machines.
  const dev = (kind: "blk" | "net" | "rng" | "serial") => `virtio-${kind}-device`;
  const args: string[] = [];

  if (x86) {
    args.push("-M", spec.accel === "tcg" ? "microvm,acpi=off,pit=on,pic=on" : "microvm,acpi=off,pit=off,pic=off");
  } else {
    args.push("-M", spec.accel === "hvf" ? "virt" : "virt,gic-version=max");
  }
  args.push("-cpu", cpuModel(spec));
  args.push("-accel", accelOption(spec));
  args.push("-smp", String(spec.vcpus), "-m", String(spec.memoryMiB));
  args.push("-nodefaults", "-no-user-config", "-nographic", "-no-reboot");

  if (spec.kernelPath !== undefined) args.push("-kernel", spec.kernelPath);
  if (spec.initrdPath !== undefined) args.push("-initrd", spec.initrdPath);
  if (spec.cmdline !== undefined) args.push("-append", spec.cmdline);

  if (spec.serialLogPath !== undefined) {
    args.push("-chardev", `file,id=console,path=${escapeOptionValue(spec.serialLogPath)},append=on`);
    args.push("-serial", "chardev:console");
  }

  if (spec.disk) {
    const drive = [
      "if=none", "id=rootdisk", `file=${escapeOptionValue(spec.disk.path)}`, `format=${spec.disk.format}`,
      // Firecracker's default block cache ("Unsafe"): a guest flush still writes QEMU's caches
      // (qcow2 metadata included) out to the host file, but does not fsync it, so killing QEMU
      // after a guest sync loses nothing; only a host crash could. Measured here: a stop's guest
      // quiesce 20 ms instead of 31 (3 stops each); fsync-heavy guest writes showed no
      // difference on this host, whose fsync is cheap. The supervisor fsyncs the disk once the
      // VM has stopped, off the caller's path.
      "cache=unsafe",
      "discard=unmap",
    ];
    if (spec.disk.readOnly) drive.push("readonly=on");
    args.push("-drive", drive.join(","));
    args.push("-device", `${dev("blk")},drive=rootdisk`);
  }

  if (spec.network.mode !== "none") {
    args.push("-netdev", netdevOption(spec.network));
    const mac = spec.network.mac === undefined ? "" : `,mac=${spec.network.mac}`;
    args.push("-device", `${dev("net")},netdev=${NETDEV_ID}${mac}`);
  }

  if (spec.rng ?? true) {
    args.push("-object", "rng-random,id=rng0,filename=/dev/urandom");
    args.push("-device", `${dev("rng")},rng=rng0`);
  }

  if (spec.agentSocketPath !== undefined) {
    args.push("-chardev", `socket,id=agent,path=${escapeOptionValue(spec.agentSocketPath)},server=on,wait=off`);
    args.push("-device", `${dev("serial")},id=vser0`);
    args.push("-device", `virtserialport,bus=vser0.0,chardev=agent,name=${AGENT_PORT_NAME}`);
  }

  args.push("-chardev", `socket,id=qmp,path=${escapeOptionValue(spec.qmpSocketPath)},server=on,wait=off`);
  args.push("-mon", "chardev=qmp,mode=control");

  if (spec.pidFile !== undefined) args.push("-pidfile", spec.pidFile);
  if (spec.startPaused) args.push("-S");
  if (spec.incoming !== undefined) args.push("-incoming", spec.incoming);
  return args;
}

/** The `-netdev` value for a network mode; a new mode fails to compile here until it is mapped. */
export function netdevOption(network: Exclude<QemuNetwork, { mode: "none" }>): string {
  switch (network.mode) {
    case "user":
      return ["user", `id=${NETDEV_ID}`, ...(network.hostForwards ?? []).map((f) => `hostfwd=${hostForwardRule(f)}`)].join(",");
    case "tap":
      return ["tap", `id=${NETDEV_ID}`, `ifname=${escapeOptionValue(network.ifname)}`, "script=no", "downscript=no"].join(",");
  }
}

function cpuModel(spec: QemuSpec): string {
  if (spec.accel !== "tcg") return "host";
  // Under emulation, QARMA pointer authentication dominates aarch64 guest time; the
  // implementation-defined algorithm is much cheaper to emulate and just as valid to the guest.
  return spec.arch === "aarch64" ? "max,pauth-impdef=on" : "max";
}

function accelOption(spec: QemuSpec): string {
  if (spec.accel !== "tcg") return spec.accel;
  // One vCPU gains nothing from multi-threaded TCG and pays for its synchronisation.
  return spec.vcpus === 1 ? "tcg,thread=single" : "tcg";
}

/** Quotes one word for /bin/sh, which runs QEMU's `exec:` migration URIs. */
export function shellQuote(word: string): string {
  return `'${word.replaceAll("'", `'\\''`)}'`;
}

/** The `-incoming` URI that restores from a state file written by migrateToFile. */
export function incomingFromFile(file: string): string {
  return `exec:cat ${shellQuote(file)}`;
}

/** The `-incoming` URI that restores from a zstd-compressed state file. */
export function incomingFromCompressedFile(file: string): string {
  return `exec:zstd -dcq ${shellQuote(file)}`;
}

/** The `migrate` URI that writes the migration stream to a file. */
export function migrateToFileUri(file: string): string {
  return `exec:cat > ${shellQuote(file)}`;
}
