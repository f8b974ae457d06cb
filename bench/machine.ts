/**
 * The machine a benchmark ran on, recorded with its numbers: a result means little without the
 * CPU, the accelerator and how loaded the box was.
 */
import { readFileSync } from "node:fs";
import { cpus, loadavg, release, totalmem } from "node:os";
import { basename, dirname } from "node:path";
import { accelFor, qemuBinary, qemuVersion } from "../lib/backends/accel.ts";
import type { GuestArch } from "../lib/kernel/arch.ts";
import { versionInfo } from "../lib/version.ts";
import type { Machine } from "./report.ts";

/** The `model name` of /proc/cpuinfo, else what node:os reports. */
export function parseCpuModel(cpuinfo: string): string | undefined {
  return /^model name\s*:\s*(.+)$/m.exec(cpuinfo)?.[1]?.trim();
}

/** PRETTY_NAME of an os-release text. */
export function parseOsRelease(text: string): string | undefined {
  return /^PRETTY_NAME="?([^"\n]*)"?$/m.exec(text)?.[1];
}

function readText(path: string): string {
  try {
    return readFileSync(path, "utf8");
  } catch {
    return "";
  }
}

export async function describeMachine(options: { arch: GuestArch; kernelPath: string; imagePath: string; image: string }): Promise<Omit<Machine, "loadAverage">> {
  const accel = await accelFor({ guestArch: options.arch, kernelPath: options.kernelPath });
  let qemu = "unknown";
  try {
    qemu = (await qemuVersion(qemuBinary(options.arch))).text;
  } catch (error) {
    qemu = `unknown (${(error as Error).message})`;
  }
  const runtime = versionInfo();
  return {
    cpuModel: parseCpuModel(readText("/proc/cpuinfo")) ?? cpus()[0]?.model ?? "unknown",
    cores: cpus().length,
    memoryMiB: Math.round(totalmem() / 2 ** 20),
    hostKernel: release(),
    os: parseOsRelease(readText("/etc/os-release")) ?? process.platform,
    qemuVersion: qemu,
    accel: accel.accel,
    accelReason: accel.reason,
    runtime: runtime.runtime,
    smolvmVersion: `${runtime.version} (${runtime.target})`,
    // Cache entries are content-addressed: the directory name identifies the build.
    guestKernel: basename(dirname(options.kernelPath)),
    image: `${options.image} (${basename(dirname(options.imagePath))})`,
  };
}

export function loadAverage(): number[] {
  return loadavg().map((x) => Math.round(x * 100) / 100);
}
