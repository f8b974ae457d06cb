/**
 * `smolvm cleanup [--all]`: reclaims what dead sandboxes still hold. A sandbox is dead when
 * neither its supervisor nor its VMM runs and it was not stopped on purpose (marked running but
 * crashed, failed, stuck creating, or abandoned mid-delete). A live sandbox is never touched,
 * with or without `--all` (which scripts written for other sandbox tools pass and which means
 * the same here); deleting every sandbox is `smolvm delete --all`. Also removes sandbox
 * directories without a row and kills VMM processes that run from a directory whose sandbox no
 * longer exists.
 */
import { readdirSync, readFileSync, rmSync } from "node:fs";
import { join } from "node:path";
import { pidAlive } from "../host/pids.ts";
import { paths } from "../paths.ts";
import type { SandboxRecord } from "../state/sandboxes.ts";
import { withStore } from "../state/sandboxes.ts";
import { destroyNow } from "./lifecycle.ts";

export interface CleanupReport {
  /** Sandboxes removed, by name. */
  sandboxes: string[];
  /** Directories under vms/ that had no sandbox. */
  strayDirs: string[];
  /** VMM processes killed because their sandbox is gone. */
  strayProcesses: number[];
  dryRun: boolean;
}

function isDead(vm: SandboxRecord): boolean {
  if (vm.status === "stopped") return false;
  return !pidAlive(vm.supervisorPid) && !pidAlive(vm.vmmPid);
}

export async function cleanup(options: { dryRun?: boolean } = {}): Promise<CleanupReport> {
  const dryRun = options.dryRun === true;
  const vms = withStore((store) => store.list());
  const doomed = vms.filter(isDead);
  const report: CleanupReport = { sandboxes: doomed.map((vm) => vm.name), strayDirs: [], strayProcesses: [], dryRun };
  if (!dryRun) {
    for (const vm of doomed) destroyNow(vm.id);
  }
  const known = new Set(vms.filter((vm) => !doomed.includes(vm) || dryRun).map((vm) => vm.id));
  let dirs: string[] = [];
  try {
    dirs = readdirSync(paths.sandboxesDir());
  } catch {
    // No sandbox was ever made.
  }
  for (const dir of dirs) {
    if (known.has(dir) || doomed.some((vm) => vm.id === dir)) continue;
    report.strayDirs.push(join(paths.sandboxesDir(), dir));
    for (const pid of processesUsing(join(paths.sandboxesDir(), dir))) {
      report.strayProcesses.push(pid);
      if (!dryRun) killQuietly(pid);
    }
    if (!dryRun) rmSync(join(paths.sandboxesDir(), dir), { recursive: true, force: true });
  }
  return report;
}

/** Processes whose command line names `dir` (a VMM or supervisor of a sandbox in it). */
function processesUsing(dir: string): number[] {
  const found: number[] = [];
  let entries: string[] = [];
  try {
    entries = readdirSync("/proc");
  } catch {
    return found; // not Linux: nothing to find this way
  }
  for (const entry of entries) {
    if (!/^\d+$/.test(entry) || Number(entry) === process.pid) continue;
    try {
      const cmdline = readFileSync(`/proc/${entry}/cmdline`, "utf8");
      if (cmdline.includes(`${dir}/`)) found.push(Number(entry));
    } catch {
      // Exited while we looked.
    }
  }
  return found;
}

function killQuietly(pid: number): void {
  try {
    process.kill(pid, "SIGKILL");
  } catch {
    // Already gone.
  }
}
