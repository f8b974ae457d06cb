/**
 * The host's TSC frequency, which a guest kernel under TCG must be told (`tsc_early_khz=`):
 * without it the emulated TSC's calibration fails and some boots hang (host-facts.md).
 */
import { readFileSync } from "node:fs";

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

