/**
 * What the host can run a guest with: the accelerator (kvm, hvf or tcg), the host's TSC
 * frequency (which the kernel needs on its command line under tcg), and the QEMU binary and
 * version for a guest architecture.
 *
 * Every probe is cached for the life of the process: the answers do not change while smolvm runs,
 * and a supervisor or a test suite asks many times.
 */
import { closeSync, constants, openSync, readFileSync } from "node:fs";
import { BackendUnavailableError } from "../errors.ts";
import { runHost, which } from "../host/process.ts";

export type GuestArch = "x86_64" | "aarch64";
export type Accel = "kvm" | "hvf" | "tcg";

export const GUEST_ARCHES: readonly GuestArch[] = ["x86_64", "aarch64"];

export interface AccelInfo {
  accel: Accel;
  /** One line on why this accelerator was chosen (shown once when it is tcg). */
  reason: string;
}

export interface QemuVersion {
  major: number;
  minor: number;
  micro: number;
  /** The full first line of `-version`, e.g. `QEMU emulator version 7.2.22 (Debian ...)`. */
  text: string;
}

/** The host's own architecture in guest terms, or undefined on a host smolvm cannot run guests of. */
export function hostArch(arch: string = process.arch): GuestArch | undefined {
  if (arch === "x64") return "x86_64";
  if (arch === "arm64") return "aarch64";
  return undefined;
}

export interface AccelProbe {
  platform?: NodeJS.Platform;
  hostArch?: GuestArch | undefined;
  /** Whether /dev/kvm can be opened read-write; by default it is tried for real. */
  kvmUsable?: () => { ok: boolean; why: string };
}

/**
 * Picks the accelerator for a guest of `guestArch`: kvm when /dev/kvm opens read-write, hvf on
 * macOS, tcg otherwise (and always for a guest of another architecture than the host's).
 */
export function chooseAccel(guestArch: GuestArch, probe: AccelProbe = {}): AccelInfo {
  const platform = probe.platform ?? process.platform;
  const native = "hostArch" in probe ? probe.hostArch : hostArch();
  if (native !== guestArch) {
    return { accel: "tcg", reason: `a ${guestArch} guest on a ${native ?? "foreign"} host is emulated` };
  }
  if (platform === "darwin") return { accel: "hvf", reason: "macOS Hypervisor.framework" };
  if (platform === "linux") {
    const kvm = (probe.kvmUsable ?? kvmUsable)();
    if (kvm.ok) return { accel: "kvm", reason: "/dev/kvm is usable" };
    return { accel: "tcg", reason: kvm.why };
  }
  return { accel: "tcg", reason: `no hardware accelerator is known on ${platform}` };
}

function kvmUsable(): { ok: boolean; why: string } {
  try {
    closeSync(openSync("/dev/kvm", constants.O_RDWR));
    return { ok: true, why: "" };
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === "ENOENT") return { ok: false, why: "/dev/kvm does not exist (no hardware virtualisation here)" };
    if (code === "EACCES" || code === "EPERM") {
      return { ok: false, why: "/dev/kvm is not accessible (add your user to group kvm)" };
    }
    return { ok: false, why: `/dev/kvm cannot be opened: ${code ?? String(error)}` };
  }
}

const accelCache = new Map<GuestArch, AccelInfo>();

/** chooseAccel for this host, probed once per guest architecture per process. */
export function detectAccel(guestArch: GuestArch): AccelInfo {
  let info = accelCache.get(guestArch);
  if (!info) {
    info = chooseAccel(guestArch);
    accelCache.set(guestArch, info);
  }
  return info;
}

let noticeGiven = false;

/**
 * The one-line notice for software emulation, returned the first time it is asked for in a
 * process and `undefined` after (and always for kvm/hvf), so it is said once.
 */
export function accelNoticeOnce(info: AccelInfo): string | undefined {
  if (info.accel !== "tcg" || noticeGiven) return undefined;
  noticeGiven = true;
  return `No hardware acceleration (${info.reason}): the guest runs under QEMU software emulation (tcg), ` +
    "which is several times slower";
}

/**
 * The TSC frequency in kHz from the text of /proc/cpuinfo: the first `cpu MHz` line, times
 * 1000, rounded. Undefined when there is none (aarch64 hosts have no such line).
 */
export function parseCpuinfoTscKhz(cpuinfo: string): number | undefined {
  const match = /^cpu MHz\s*:\s*([0-9]+(?:\.[0-9]+)?)\s*$/m.exec(cpuinfo);
  if (!match) return undefined;
  const khz = Math.round(Number(match[1]) * 1000);
  return Number.isFinite(khz) && khz > 0 ? khz : undefined;
}

let tscCache: { khz: number | undefined } | undefined;

/**
 * The host's TSC frequency in kHz, for `tsc_early_khz=` on a tcg guest's kernel command line.
 * The kernel's own exact figure (`tsc_freq_khz` in sysfs, where the host kernel exports it) wins
 * over `cpu MHz` from /proc/cpuinfo. Undefined when neither is readable (non-x86 hosts).
 */
export function hostTscKhz(): number | undefined {
  if (tscCache) return tscCache.khz;
  let khz: number | undefined;
  try {
    const exact = Number(readFileSync("/sys/devices/system/cpu/cpu0/tsc_freq_khz", "utf8").trim());
    if (Number.isInteger(exact) && exact > 0) khz = exact;
  } catch { /* most kernels do not export it */ }
  if (khz === undefined) {
    try {
      khz = parseCpuinfoTscKhz(readFileSync("/proc/cpuinfo", "utf8"));
    } catch { /* not Linux */ }
  }
  tscCache = { khz };
  return khz;
}

/** The QEMU system emulator's program name for a guest architecture. */
export function qemuProgram(arch: GuestArch): string {
  return arch === "x86_64" ? "qemu-system-x86_64" : "qemu-system-aarch64";
}

/** Full path of the QEMU system emulator for `arch`; BackendUnavailableError when not installed. */
export function qemuBinary(arch: GuestArch): string {
  const program = qemuProgram(arch);
  const found = which(program);
  if (!found) {
    throw new BackendUnavailableError(`Cannot use the QEMU backend: "${program}" is not installed`, {
      hint: process.platform === "darwin"
        ? "install it with `brew install qemu`"
        : "run `smolvm setup`, or install the qemu-system-x86 / qemu-system-arm and qemu-utils packages",
      details: { program, arch },
    });
  }
  return found;
}

/** Parses the first line of `qemu-system-* -version` / `qemu-img --version`. */
export function parseQemuVersion(output: string): QemuVersion | undefined {
  const line = output.split("\n").find((l) => /version\s+\d+\.\d+/.test(l));
  if (!line) return undefined;
  const match = /version\s+(\d+)\.(\d+)(?:\.(\d+))?/.exec(line)!;
  return { major: Number(match[1]), minor: Number(match[2]), micro: Number(match[3] ?? 0), text: line.trim() };
}

const versionCache = new Map<string, Promise<QemuVersion>>();

/** The version of a QEMU binary, asked once per binary per process. */
export function qemuVersion(binary: string): Promise<QemuVersion> {
  let pending = versionCache.get(binary);
  if (!pending) {
    pending = (async () => {
      const result = await runHost(binary, ["-version"], { timeoutMs: 10_000 });
      const version = parseQemuVersion(result.stdout);
      if (result.code !== 0 || !version) {
        throw new BackendUnavailableError(`Cannot use the QEMU backend: "${binary} -version" did not report a version`, {
          hint: "reinstall QEMU (`smolvm setup`)",
          details: { binary, code: result.code, stderr: result.stderr.slice(-500) },
        });
      }
      return version;
    })();
    pending.catch(() => versionCache.delete(binary));
    versionCache.set(binary, pending);
  }
  return pending;
}

/** The serial console device a guest's kernel writes to: `console=<this>` on its command line. */
export function consoleDevice(arch: GuestArch): string {
  return arch === "x86_64" ? "ttyS0" : "ttyAMA0";
}
