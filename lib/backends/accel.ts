/**
 * What the host can run a guest with: the accelerator (kvm, hvf or tcg; kvm only once proven,
 * see kvm-probe.ts), the host's TSC
 * frequency (which the kernel needs on its command line under tcg), and the QEMU binary and
 * version for a guest architecture.
 *
 * Every probe is cached for the life of the process: the answers do not change while smolvm runs,
 * and a supervisor or a test suite asks many times.
 */
import { ACCELS, type AccelChoice } from "../config.ts";
import { BackendUnavailableError, InvalidInputError } from "../errors.ts";
import { runHost, which } from "../host/process.ts";
import { provenKvm, type KvmProbeOptions, type KvmVerdict } from "./kvm-probe.ts";
import type { GuestArch } from "../kernel/arch.ts";

export { hostTscKhz, parseCpuinfoTscKhz } from "../host/tsc.ts";

export type { GuestArch } from "../kernel/arch.ts";
export type Accel = "kvm" | "hvf" | "tcg";


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


export interface ResolveAccelOptions {
  guestArch: GuestArch;
  /** The explicit choice (`--accel`, SDK `accel`); `auto` defers to SMOLVM_ACCEL, then the host. */
  requested?: AccelChoice;
  /** The kernel the KVM proof boots (the sandbox's own). */
  kernelPath: string;
  /** Default: the installed QEMU for the guest arch. */
  qemuBinary?: string;
  env?: Record<string, string | undefined>;
  platform?: NodeJS.Platform;
  hostArch?: GuestArch | undefined;
  /** Default: provenKvm (boots the kernel under KVM once per host boot). */
  proveKvm?: (options: KvmProbeOptions) => Promise<KvmVerdict>;
}

function requestedAccel(options: ResolveAccelOptions): { choice: AccelChoice; source: string } {
  if (options.requested !== undefined && options.requested !== "auto") return { choice: options.requested, source: "--accel" };
  const fromEnv = (options.env ?? process.env).SMOLVM_ACCEL;
  if (fromEnv === undefined || fromEnv === "") return { choice: "auto", source: "" };
  if (!(ACCELS as readonly string[]).includes(fromEnv)) {
    throw new InvalidInputError(`Cannot choose an accelerator: SMOLVM_ACCEL is "${fromEnv}"`, {
      hint: `use one of ${ACCELS.join(", ")}, or unset it`,
    });
  }
  return { choice: fromEnv as AccelChoice, source: "SMOLVM_ACCEL" };
}

/**
 * The accelerator a guest of `guestArch` runs with. An explicit choice is obeyed or refused
 * (an explicit kvm that cannot run a guest is an error, not a fallback). `auto` takes hvf on
 * macOS, kvm on Linux only once a guest has been seen to run under it (kvm-probe.ts), and tcg
 * otherwise, with the reason QEMU gave.
 */
export async function resolveAccel(options: ResolveAccelOptions): Promise<AccelInfo> {
  const { choice, source } = requestedAccel(options);
  const platform = options.platform ?? process.platform;
  const native = "hostArch" in options ? options.hostArch : hostArch();
  const foreign = native !== options.guestArch;
  const refuse = (why: string) => new BackendUnavailableError(`Cannot use ${choice} (${source}): ${why}`, {
    hint: `leave ${source} out (or set it to auto) to let smolvm choose`,
    details: { requested: choice, guestArch: options.guestArch, platform },
  });
  if (choice === "tcg") return { accel: "tcg", reason: `asked for by ${source}` };
  if (foreign) {
    if (choice !== "auto") throw refuse(`a ${options.guestArch} guest cannot be accelerated on a ${native ?? "foreign"} host`);
    return { accel: "tcg", reason: `a ${options.guestArch} guest on a ${native ?? "foreign"} host is emulated` };
  }
  if (choice === "hvf" && platform !== "darwin") throw refuse("Hypervisor.framework exists only on macOS");
  if (platform === "darwin") {
    if (choice === "kvm") throw refuse("KVM exists only on Linux");
    return { accel: "hvf", reason: "macOS Hypervisor.framework" };
  }
  if (platform !== "linux") {
    if (choice === "kvm") throw refuse(`KVM exists only on Linux, not ${platform}`);
    return { accel: "tcg", reason: `no hardware accelerator is known on ${platform}` };
  }
  const verdict = await (options.proveKvm ?? provenKvm)({
    arch: options.guestArch,
    qemuBinary: options.qemuBinary ?? qemuBinary(options.guestArch),
    kernelPath: options.kernelPath,
  });
  if (verdict.usable) return { accel: "kvm", reason: "KVM ran a test guest on this host" };
  if (choice === "kvm") throw refuse(verdict.reason);
  return { accel: "tcg", reason: verdict.reason };
}

const accelCache = new Map<string, Promise<AccelInfo>>();

/** resolveAccel, once per guest arch, choice and kernel per process. */
export function accelFor(options: ResolveAccelOptions): Promise<AccelInfo> {
  const key = `${options.guestArch}:${options.requested ?? "auto"}:${(options.env ?? process.env).SMOLVM_ACCEL ?? ""}:${options.kernelPath}`;
  let pending = accelCache.get(key);
  if (!pending) {
    pending = resolveAccel(options);
    pending.catch(() => accelCache.delete(key));
    accelCache.set(key, pending);
  }
  return pending;
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
