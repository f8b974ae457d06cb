/**
 * What /proc says about a process: its resident memory and when it started. Parsers are pure;
 * the readers return undefined off Linux or for a process that is gone.
 */
import { readFileSync } from "node:fs";

/** VmRSS of a /proc/<pid>/status text, in KiB. */
export function parseVmRssKiB(status: string): number | undefined {
  const match = /^VmRSS:\s+(\d+)\s+kB$/m.exec(status);
  return match ? Number(match[1]) : undefined;
}

/**
 * Private (unshared) memory of a /proc/<pid>/smaps_rollup text, in KiB: what one more such
 * process costs the host. RSS also counts pages shared with every other smolvm or QEMU process
 * (the executable's code, most of a supervisor's RSS).
 */
export function parsePrivateKiB(smapsRollup: string): number | undefined {
  const clean = /^Private_Clean:\s+(\d+)\s+kB$/m.exec(smapsRollup);
  const dirty = /^Private_Dirty:\s+(\d+)\s+kB$/m.exec(smapsRollup);
  return clean && dirty ? Number(clean[1]) + Number(dirty[1]) : undefined;
}

/** The start time (field 22, clock ticks after boot) of a /proc/<pid>/stat text. */
export function parseStartTicks(stat: string): number | undefined {
  // The command name (field 2) may hold spaces and parentheses: count fields after the last ")".
  const rest = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  const ticks = Number(rest[22 - 3]);
  return Number.isFinite(ticks) ? ticks : undefined;
}

export function rssMiB(pid: number): number | undefined {
  try {
    const kib = parseVmRssKiB(readFileSync(`/proc/${pid}/status`, "utf8"));
    return kib === undefined ? undefined : kib / 1024;
  } catch {
    return undefined;
  }
}

export function privateMiB(pid: number): number | undefined {
  try {
    const kib = parsePrivateKiB(readFileSync(`/proc/${pid}/smaps_rollup`, "utf8"));
    return kib === undefined ? undefined : kib / 1024;
  } catch {
    return undefined;
  }
}

/** Clock ticks per second of /proc times; 100 on every Linux this runs on (USER_HZ). */
const TICKS_PER_SECOND = 100;

/**
 * When a process started, as epoch milliseconds. Resolution is one clock tick (10 ms), and the
 * boot time it is counted from is known to 10 ms as well.
 */
export function processStartEpochMs(pid: number): number | undefined {
  try {
    const ticks = parseStartTicks(readFileSync(`/proc/${pid}/stat`, "utf8"));
    const uptimeSeconds = Number(readFileSync("/proc/uptime", "utf8").split(" ")[0]);
    if (ticks === undefined || !Number.isFinite(uptimeSeconds)) return undefined;
    const bootEpochMs = Date.now() - uptimeSeconds * 1000;
    return bootEpochMs + (ticks / TICKS_PER_SECOND) * 1000;
  } catch {
    return undefined;
  }
}
