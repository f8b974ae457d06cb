/**
 * Whether KVM can run a guest here, proven by running one.
 *
 * A `/dev/kvm` that opens is no proof: nested hypervisors (seen: `kvm-pvm` on cloud VMs and CI
 * runners) expose a device that answers KVM_GET_API_VERSION and then make QEMU abort at the
 * first vCPU set-up (`failed to set MSR 0x10a`), or hang without running a single guest
 * instruction. So before KVM is chosen, QEMU boots our own kernel under it with no root disk:
 * the kernel reaches its "cannot mount root" panic, which with `panic=-1 reboot=t` and QEMU's
 * `-no-reboot` ends QEMU with status 0. That takes ~0.1-0.3 s on a working host, once per host
 * boot: the verdict is kept in the cache keyed by the kernel's boot id and the QEMU binary.
 */
import { spawn } from "node:child_process";
import { closeSync, constants, mkdirSync, mkdtempSync, openSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { cacheRoot } from "../paths.ts";
import type { GuestArch } from "../kernel/arch.ts";
import { hostTscKhz } from "../host/tsc.ts";
import { qemuArgs } from "./qemu/args.ts";

export type KvmVerdict = { usable: true } | { usable: false; reason: string };

export interface KvmProbeOptions {
  arch: GuestArch;
  qemuBinary: string;
  kernelPath: string;
  /** How long the guest may take to reach its panic under KVM. Default 10 s. */
  timeoutMs?: number;
  /** The same under TCG, for the control boot. Default 60 s. */
  controlTimeoutMs?: number;
  devicePath?: string;
}

/** The guest printed this much of its boot, so it ran under KVM. */
const GUEST_RAN = /Kernel panic|VFS: |Linux version/;

/** Why `/dev/kvm` cannot even be opened, or undefined when it opens read-write. */
export function kvmDeviceProblem(devicePath = "/dev/kvm"): string | undefined {
  try {
    closeSync(openSync(devicePath, constants.O_RDWR));
    return undefined;
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === "ENOENT") return `${devicePath} does not exist (no hardware virtualisation here)`;
    if (code === "EACCES" || code === "EPERM") return `${devicePath} is not accessible (add your user to group kvm)`;
    return `${devicePath} cannot be opened: ${code ?? String(error)}`;
  }
}

/** QEMU's first line that reads like an error, for a one-line reason. */
export function firstErrorLine(output: string): string | undefined {
  const lines = output.split("\n").map((line) => line.trim()).filter(Boolean);
  return lines.find((line) => /error|failed|assert|cannot|could not|invalid/i.test(line)) ?? lines[0];
}

type BootOutcome = { ran: true } | { ran: false; reason: string };

/** Boots the kernel once to its no-root panic under `accel` and says whether the guest ran. */
async function bootToPanic(options: KvmProbeOptions, accel: "kvm" | "tcg", timeoutMs: number): Promise<BootOutcome> {
  mkdirSync(cacheRoot(), { recursive: true });
  const scratch = mkdtempSync(join(cacheRoot(), ".kvm-probe-"));
  const serial = join(scratch, "console.log");
  const x86 = options.arch === "x86_64";
  const tscKhz = accel === "tcg" && x86 ? hostTscKhz() : undefined;
  const cmdline = [
    x86 ? "console=ttyS0 reboot=t" : "console=ttyAMA0",
    "panic=-1 root=/dev/vda",
    // Emulated x86 needs these to calibrate reliably (see lib/kernel/cmdline.ts).
    tscKhz === undefined ? "" : `tsc_early_khz=${tscKhz} tsc=reliable no_timer_check noapictimer`,
  ].filter(Boolean).join(" ");
  const args = qemuArgs({
    arch: options.arch,
    accel,
    vcpus: 1,
    memoryMiB: 128,
    kernelPath: options.kernelPath,
    cmdline,
    network: { mode: "none" },
    qmpSocketPath: join(scratch, "qmp.sock"),
    serialLogPath: serial,
    rng: false,
  });
  try {
    const outcome = await new Promise<{ code: number | null; signal: string | null; output: string } | "timeout">((resolve) => {
      const child = spawn(options.qemuBinary, args, { stdio: ["ignore", "pipe", "pipe"] });
      let output = "";
      const collect = (chunk: Buffer) => {
        if (output.length < 8192) output += chunk.toString("utf8");
      };
      child.stdout.on("data", collect);
      child.stderr.on("data", collect);
      const timer = setTimeout(() => {
        child.kill("SIGKILL");
        resolve("timeout");
      }, timeoutMs);
      child.once("error", (error) => {
        clearTimeout(timer);
        resolve({ code: null, signal: null, output: error.message });
      });
      child.once("close", (code, signal) => {
        clearTimeout(timer);
        resolve({ code, signal, output });
      });
    });
    const upper = accel.toUpperCase();
    if (outcome === "timeout") return { ran: false, reason: `QEMU started under ${upper} but the guest did not run within ${timeoutMs / 1000} s` };
    if (outcome.code === 0 && GUEST_RAN.test(readText(serial))) return { ran: true };
    const how = outcome.signal !== null ? `was killed by ${outcome.signal}` : `exited with status ${outcome.code}`;
    const line = firstErrorLine(outcome.output);
    return { ran: false, reason: `QEMU under ${upper} ${how}${line === undefined ? " without running the guest" : `: ${line}`}` };
  } finally {
    rmSync(scratch, { recursive: true, force: true });
  }
}

/**
 * Boots the kernel under KVM once and says whether the guest ran. When it did not, the same
 * guest is booted under TCG: only if that one runs is KVM to blame (a missing or broken kernel
 * or QEMU fails both, and is then reported as `inconclusive`, never remembered as a KVM verdict).
 */
export async function probeKvm(options: KvmProbeOptions): Promise<KvmVerdict & { inconclusive?: true }> {
  const deviceProblem = kvmDeviceProblem(options.devicePath);
  if (deviceProblem !== undefined) return { usable: false, reason: deviceProblem };
  const kvm = await bootToPanic(options, "kvm", options.timeoutMs ?? 10_000);
  if (kvm.ran) return { usable: true };
  const control = await bootToPanic(options, "tcg", options.controlTimeoutMs ?? 60_000);
  if (control.ran) return { usable: false, reason: kvm.reason };
  return { usable: false, reason: `${kvm.reason}; the same guest also failed under TCG (${control.reason})`, inconclusive: true };
}

function readText(path: string): string {
  try {
    return readFileSync(path, "utf8");
  } catch {
    return "";
  }
}

/** This boot of the host kernel; a verdict is only good for the boot it was made in. */
export function hostBootId(): string {
  try {
    return readFileSync("/proc/sys/kernel/random/boot_id", "utf8").trim();
  } catch {
    return "unknown";
  }
}

interface CachedVerdict {
  bootId: string;
  qemu: string;
  verdict: KvmVerdict;
  probedAt: string;
}

function qemuIdentity(binary: string): string {
  try {
    const info = statSync(binary);
    return `${binary}:${info.size}:${Math.round(info.mtimeMs)}`;
  } catch {
    return binary;
  }
}

function verdictFile(arch: GuestArch): string {
  return join(cacheRoot(), "host", `kvm-${arch}.json`);
}

/** The cached verdict for this host boot and QEMU binary, if one was made. */
export function cachedKvmVerdict(arch: GuestArch, qemuBinary: string): KvmVerdict | undefined {
  try {
    const cached = JSON.parse(readFileSync(verdictFile(arch), "utf8")) as Partial<CachedVerdict>;
    if (cached.bootId !== hostBootId() || cached.qemu !== qemuIdentity(qemuBinary)) return undefined;
    const verdict = cached.verdict;
    if (verdict?.usable === true) return { usable: true };
    if (verdict?.usable === false && typeof verdict.reason === "string") return { usable: false, reason: verdict.reason };
    return undefined;
  } catch {
    return undefined;
  }
}

/** probeKvm, answered from the cache when this boot and binary were probed before. */
export async function provenKvm(options: KvmProbeOptions): Promise<KvmVerdict> {
  const cached = cachedKvmVerdict(options.arch, options.qemuBinary);
  if (cached !== undefined) return cached;
  const probed = await probeKvm(options);
  const verdict: KvmVerdict = probed.usable ? { usable: true } : { usable: false, reason: probed.reason };
  // Not remembered: a device that cannot be opened (adding the user to group kvm fixes it
  // without a reboot) and an inconclusive probe (the kernel or QEMU was at fault).
  if (probed.usable || (kvmDeviceProblem(options.devicePath) === undefined && probed.inconclusive !== true)) {
    const record: CachedVerdict = { bootId: hostBootId(), qemu: qemuIdentity(options.qemuBinary), verdict, probedAt: new Date().toISOString() };
    try {
      mkdirSync(join(cacheRoot(), "host"), { recursive: true });
      const temp = `${verdictFile(options.arch)}.${process.pid}.tmp`;
      writeFileSync(temp, JSON.stringify(record, null, 2) + "\n");
      renameSync(temp, verdictFile(options.arch));
    } catch {
      // An unwritable cache only means probing again next time.
    }
  }
  return verdict;
}
