/**
 * Gathers facts about the host for `smolvm doctor`. Probing is the only impure part: the verdict
 * in `doctor.ts` is a pure function of these facts, so every combination is unit-testable.
 */
import { accessSync, constants, existsSync, readdirSync, statfsSync } from "node:fs";
import { dirname } from "node:path";
import { paths, smolvmHome } from "../paths.ts";
import { runHost, which } from "./process.ts";

export interface ToolFact {
  path: string | undefined;
  version: string | undefined;
}

export interface HostFacts {
  platform: string;
  arch: string;
  /** `/dev/kvm` exists / can be opened read-write by this user. */
  kvm: { present: boolean; usable: boolean };
  /** macOS only: Hypervisor.framework reported by `sysctl kern.hv_support`. */
  hvf: boolean;
  qemuSystem: ToolFact & { binary: string };
  qemuImg: ToolFact;
  firecracker: ToolFact;
  vhostVsock: boolean;
  netTun: boolean;
  nft: ToolFact;
  ip: ToolFact;
  /** mkfs.ext4 and whether it knows `-d` (e2fsprogs 1.43+), which image builds rely on. */
  mkfsExt4: ToolFact & { populatesFromDir: boolean };
  ssh: ToolFact;
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
  const [qemuSystem, qemuImg, firecracker, nft, ip, mkfs, ssh, hvf] = await Promise.all([
    tool(qemuBinary, ["-version"], /version (\S+)/),
    tool("qemu-img", ["--version"], /version (\S+)/),
    tool("firecracker", ["--version"], /Firecracker v?(\S+)/i),
    tool("nft", ["--version"], /v(\S+)/),
    tool("ip", ["-V"], /(?:iproute2-|version )([\w.]+)/),
    tool("mkfs.ext4", ["-V"], /mke2fs (\S+)/),
    tool("ssh", ["-V"], /OpenSSH_(\S+?)[, ]/),
    process.platform === "darwin" ? hvfSupported() : Promise.resolve(false),
  ]);
  return {
    platform: process.platform,
    arch: process.arch,
    kvm: { present: existsSync("/dev/kvm"), usable: canOpen("/dev/kvm") },
    hvf,
    qemuSystem: { ...qemuSystem, binary: qemuBinary },
    qemuImg,
    firecracker,
    vhostVsock: existsSync("/dev/vhost-vsock"),
    netTun: existsSync("/dev/net/tun"),
    nft,
    ip,
    mkfsExt4: { ...mkfs, populatesFromDir: mkfs.version !== undefined && versionAtLeast(mkfs.version, [1, 43]) },
    ssh,
    home: smolvmHome(),
    freeDiskBytes: freeBytesUnder(smolvmHome()),
    kernelsCached: countEntries(paths.kernelsDir()),
    imagesCached: countEntries(paths.imagesDir()),
  };
}

async function tool(program: string, args: string[], pattern: RegExp): Promise<ToolFact> {
  const path = which(program);
  if (path === undefined) return { path, version: undefined };
  try {
    const result = await runHost(path, args, { timeoutMs: 5000 });
    const match = pattern.exec(`${result.stdout}\n${result.stderr}`);
    return { path, version: match?.[1] };
  } catch {
    return { path, version: undefined };
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

function canOpen(path: string): boolean {
  try {
    accessSync(path, constants.R_OK | constants.W_OK);
    return true;
  } catch {
    return false;
  }
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
