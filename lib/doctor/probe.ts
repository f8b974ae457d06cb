/**
 * Gathers facts about the host for `smolvm doctor`. Probing is the only impure part: the verdict
 * in `doctor.ts` is a pure function of these facts, so every combination is unit-testable.
 */
import { accessSync, constants, existsSync, readdirSync, readFileSync, statfsSync } from "node:fs";
import { dirname } from "node:path";
import { paths, smolvmHome } from "../paths.ts";
import { runHost, which } from "../host/process.ts";
import { findVmmProgram } from "../backends/firecracker/locate.ts";
import { cachedKvmVerdict, kvmDeviceProblem, provenKvm } from "../backends/kvm-probe.ts";
import { DEFAULT_IMAGE } from "../config.ts";
import { listImages } from "../images/store.ts";
import { hostGuestArch, type GuestArch } from "../kernel/arch.ts";
import { findKernel } from "../kernel/cache.ts";
import { grantsHypervisor } from "./entitlements.ts";

export interface ToolFact {
  path: string | undefined;
  version: string | undefined;
}

export interface HostFacts {
  platform: string;
  arch: string;
  kvm: {
    /** `/dev/kvm` exists. */
    present: boolean;
    /** Why it cannot be opened read-write by this user; absent when it can. */
    openProblem?: string;
    /**
     * Whether a test guest ran under it (kvm-probe.ts): proven now or earlier this host boot.
     * Absent when it could not be tried (no device, or no guest kernel built yet).
     */
    verdict?: { usable: true } | { usable: false; reason: string };
  };
  /** SMOLVM_ACCEL, when set: the accelerator every sandbox is told to use. */
  accelOverride?: string;
  /** macOS only: Hypervisor.framework reported by `sysctl kern.hv_support`. */
  hvf: boolean;
  qemuSystem: ToolFact & { binary: string };
  /** macOS only: whether QEMU's signature grants com.apple.security.hypervisor (undefined: unread). */
  qemuHypervisorEntitlement?: boolean;
  qemuImg: ToolFact;
  firecracker: ToolFact;
  /** Whether the installed QEMU has the virtio-serial port the agent channel runs over. */
  qemuVirtioSerial: boolean | undefined;
  /** The default image, if built: whether it has sshd, for the SSH channel (read from the image). */
  defaultImage: { name: string; built: boolean; sshd?: boolean };
  /** mkfs.ext4 and whether it knows `-d` (e2fsprogs 1.43+), which image builds rely on. */
  mkfsExt4: ToolFact & { populatesFromDir: boolean };
  ssh: ToolFact;
  /** What the sandbox networks need (Linux; lib/network). */
  network: {
    /** Programs the default (user) network needs that are not installed. */
    missing: string[];
    /** Whether this user may make user and network namespaces (`unshare -Urn true` ran). */
    userNamespaces: boolean;
    /** Whether this user can open /dev/net/tun read-write (pasta and TAP mode need it). */
    tun: boolean;
    /** CAP_NET_ADMIN in this process's effective set (TAP mode). */
    netAdmin: boolean;
  };
  home: string;
  freeDiskBytes: number | undefined;
  kernelsCached: number;
  imagesCached: number;
}

/** The QEMU system emulator matching the host's CPU, which is the guest arch we run. */
export function qemuBinaryFor(arch: string): string {
  return arch === "arm64" ? "qemu-system-aarch64" : "qemu-system-x86_64";
}

export async function probeHost(): Promise<HostFacts> {
  const qemuBinary = qemuBinaryFor(process.arch);
  const [qemuSystem, qemuImg, firecracker, mkfs, ssh, hvf] = await Promise.all([
    tool(qemuBinary, ["-version"], /version (\S+)/),
    tool("qemu-img", ["--version"], /version (\S+)/),
    tool("firecracker", ["--version"], /Firecracker v?(\S+)/i, findVmmProgram),
    tool("mkfs.ext4", ["-V"], /mke2fs (\S+)/),
    tool("ssh", ["-V"], /OpenSSH_(\S+?)[, ]/),
    process.platform === "darwin" ? hvfSupported() : Promise.resolve(false),
  ]);
  const guestArch = hostGuestArch();
  const kernel = await findKernel(guestArch).catch(() => undefined);
  const [kvm, qemuVirtioSerial, defaultImage] = await Promise.all([
    probeKvmFacts(qemuSystem.path, kernel),
    qemuSystem.path === undefined ? Promise.resolve(undefined) : hasDevice(qemuSystem.path, "virtserialport"),
    probeDefaultImage(guestArch),
  ]);
  const accelOverride = process.env.SMOLVM_ACCEL;
  const qemuHypervisorEntitlement = process.platform === "darwin" && qemuSystem.path !== undefined ? await hypervisorEntitlement(qemuSystem.path) : undefined;
  return {
    ...(qemuHypervisorEntitlement === undefined ? {} : { qemuHypervisorEntitlement }),
    platform: process.platform,
    arch: process.arch,
    kvm,
    ...(accelOverride ? { accelOverride } : {}),
    hvf,
    qemuSystem: { ...qemuSystem, binary: qemuBinary },
    qemuImg,
    firecracker,
    qemuVirtioSerial,
    defaultImage,
    mkfsExt4: { ...mkfs, populatesFromDir: mkfs.version !== undefined && versionAtLeast(mkfs.version, [1, 43]) },
    ssh,
    network: await probeNetwork(),
    home: smolvmHome(),
    freeDiskBytes: freeBytesUnder(smolvmHome()),
    kernelsCached: countEntries(paths.kernelsDir()),
    imagesCached: countEntries(paths.imagesDir()),
  };
}

async function probeNetwork(): Promise<HostFacts["network"]> {
  if (process.platform !== "linux") return { missing: [], userNamespaces: false, tun: false, netAdmin: false };
  const missing = ["pasta", "unshare", "nsenter", "nft", "ip"].filter((program) => which(program) === undefined);
  const unshare = which("unshare");
  const userNamespaces = unshare !== undefined && (await runHost(unshare, ["-Urn", "true"], { timeoutMs: 5000 }).catch(() => undefined))?.code === 0;
  let tun = false;
  try {
    accessSync("/dev/net/tun", constants.R_OK | constants.W_OK);
    tun = true;
  } catch { /* not usable */ }
  let netAdmin = false;
  try {
    const capEff = /^CapEff:\s*([0-9a-f]+)$/m.exec(readFileSync("/proc/self/status", "utf8"))?.[1];
    netAdmin = capEff !== undefined && ((BigInt(`0x${capEff}`) >> 12n) & 1n) === 1n;
  } catch { /* no /proc */ }
  return { missing, userNamespaces, tun, netAdmin };
}

async function tool(program: string, args: string[], pattern: RegExp, find: (program: string) => string | undefined = which): Promise<ToolFact> {
  const path = find(program);
  if (path === undefined) return { path, version: undefined };
  try {
    const result = await runHost(path, args, { timeoutMs: 5000 });
    const match = pattern.exec(`${result.stdout}\n${result.stderr}`);
    return { path, version: match?.[1] };
  } catch {
    return { path, version: undefined };
  }
}

async function hypervisorEntitlement(qemuPath: string): Promise<boolean | undefined> {
  try {
    const result = await runHost("codesign", ["-d", "--entitlements", "-", qemuPath], { timeoutMs: 5000 });
    return grantsHypervisor(`${result.stdout}\n${result.stderr}`);
  } catch {
    return undefined;
  }
}

async function hvfSupported(): Promise<boolean> {
  try {
    const result = await runHost("sysctl", ["-n", "kern.hv_support"], { timeoutMs: 5000 });
    return result.stdout.trim() === "1";
  } catch {
    return false;
  }
}

async function probeKvmFacts(qemu: string | undefined, kernel: string | undefined): Promise<HostFacts["kvm"]> {
  if (process.platform !== "linux") return { present: false };
  const present = existsSync("/dev/kvm");
  const openProblem = kvmDeviceProblem();
  if (openProblem !== undefined) return { present, openProblem };
  const arch = hostGuestArch();
  if (qemu === undefined) return { present };
  // Proving KVM boots our kernel once per host boot; without a kernel, an earlier verdict is all there is.
  const verdict = kernel === undefined
    ? cachedKvmVerdict(arch, qemu)
    : await provenKvm({ arch, qemuBinary: qemu, kernelPath: kernel });
  return verdict === undefined ? { present } : { present, verdict };
}

/** Whether `qemu -device help` lists `device` (~0.1 s). */
async function hasDevice(qemu: string, device: string): Promise<boolean | undefined> {
  try {
    const result = await runHost(qemu, ["-device", "help"], { timeoutMs: 10_000 });
    return result.code === 0 ? new RegExp(`"${device}"`).test(result.stdout) : undefined;
  } catch {
    return undefined;
  }
}

/** The default image, and whether its root has sshd (read from the ext4 with debugfs). */
async function probeDefaultImage(arch: GuestArch): Promise<HostFacts["defaultImage"]> {
  const name = DEFAULT_IMAGE;
  const image = (await listImages().catch(() => [])).find((i) => i.name === name && i.arch === arch);
  if (image === undefined) return { name, built: false };
  const debugfs = which("debugfs");
  if (debugfs === undefined) return { name, built: true };
  const result = await runHost(debugfs, ["-R", "stat /usr/sbin/sshd", image.path], { timeoutMs: 10_000 }).catch(() => undefined);
  if (result === undefined || result.code !== 0) return { name, built: true };
  return { name, built: true, sshd: /Inode:\s*\d+/.test(result.stdout) };
}

/** Free bytes on the filesystem that holds (or will hold) the smolvm home. */
function freeBytesUnder(path: string): number | undefined {
  let probe = path;
  while (!existsSync(probe)) {
    const parent = dirname(probe);
    if (parent === probe) return undefined;
    probe = parent;
  }
  try {
    const stats = statfsSync(probe);
    return stats.bavail * stats.bsize;
  } catch {
    return undefined;
  }
}

function countEntries(dir: string): number {
  try {
    return readdirSync(dir).filter((name) => !name.startsWith(".")).length;
  } catch {
    return 0;
  }
}

export function versionAtLeast(version: string, minimum: number[]): boolean {
  const parts = version.split(/[.-]/).map((part) => Number.parseInt(part, 10));
  for (let i = 0; i < minimum.length; i++) {
    const have = parts[i] ?? 0;
    const want = minimum[i] ?? 0;
    if (Number.isNaN(have) || have < want) return false;
    if (have > want) return true;
  }
  return true;
}
