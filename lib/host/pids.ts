import { readFileSync } from "node:fs";

/**
 * Whether a process we started earlier is still there. Signal 0 checks without touching it; a
 * zombie (dead, waiting for its parent to reap it) still answers signal 0, so on Linux its
 * state in /proc decides.
 */
export function pidAlive(pid: number | null | undefined): boolean {
  if (pid === null || pid === undefined || pid <= 0) return false;
  try {
    process.kill(pid, 0);
  } catch (error) {
    // EPERM means it exists but belongs to someone else: still alive.
    if ((error as NodeJS.ErrnoException).code !== "EPERM") return false;
  }
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    const state = stat.slice(stat.lastIndexOf(")") + 2, stat.lastIndexOf(")") + 3);
    return state !== "Z" && state !== "X";
  } catch (error) {
    // No /proc (macOS): signal 0 has to do. A vanished entry means it just exited.
    return (error as NodeJS.ErrnoException).code !== "ENOENT" || !isLinux();
  }
}

function isLinux(): boolean {
  return process.platform === "linux";
}

/** A process as /proc shows it: its state letter (R, S, D, T, Z...) and the CPU time it used. */
export interface ProcessStat {
  state: string;
  /** User and system CPU time, in milliseconds (clock ticks at the usual 100 Hz). */
  cpuMs: number;
  /** When it started, in clock ticks since boot: with the pid, it names one process for good. */
  startTicks: number;
}

/** `/proc/PID/stat`, or undefined where there is no such process (or no /proc). */
export function processStat(pid: number): ProcessStat | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    // Fields after the command name, which may itself hold spaces and parentheses.
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    return { state: fields[0]!, cpuMs: (Number(fields[11]) + Number(fields[12])) * 10, startTicks: Number(fields[19]) };
  } catch {
    return undefined;
  }
}

/** A process named for good: its pid and when it started (a pid alone may be reused). */
export interface ProcessIdentity {
  pid: number;
  /** From /proc; absent where there is none (then the pid alone has to do). */
  startTicks?: number;
}

/** This process, as others can check on it later. */
export function selfIdentity(): ProcessIdentity {
  const stat = processStat(process.pid);
  return stat === undefined ? { pid: process.pid } : { pid: process.pid, startTicks: stat.startTicks };
}

/** Whether the process `identity` names still runs (not a later one that got its pid). */
export function identityAlive(identity: ProcessIdentity): boolean {
  if (!pidAlive(identity.pid)) return false;
  if (identity.startTicks === undefined) return true;
  return processStat(identity.pid)?.startTicks === identity.startTicks;
}
