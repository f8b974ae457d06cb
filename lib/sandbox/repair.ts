/**
 * `smolvm doctor --repair`: gives the state store back the sandboxes it lost. A damaged store
 * (empty, cut short, not a database) is moved aside, never deleted, and a new one is built; then
 * every sandbox directory whose row is missing gets it back from its `sandbox.json` (the mirror
 * the store keeps there, lib/state/mirror.ts), with what is true now: a sandbox whose processes
 * still run keeps its state and pids, one whose processes are gone is stopped (or failed, when it
 * was running: its VM ended while the store could not say so). Nothing in a sandbox directory is
 * changed but its mirror.
 */
import { existsSync, readdirSync, renameSync } from "node:fs";
import { join } from "node:path";
import { SmolError } from "../errors.ts";
import { paths } from "../paths.ts";
import { readMirrorText } from "../state/mirror.ts";
import { withStore } from "../state/sandboxes.ts";
import { recordFromMirror, type SandboxRecord } from "../state/record.ts";
import { sandboxProcesses } from "./processes.ts";

export interface RepairReport {
  /** Why the store was set aside (its damage), or null when it was sound. */
  damage: string | null;
  /** Where the damaged store went. */
  movedAside: string | null;
  /** Rows given back, with the state they were given and any allocation that had to change. */
  restored: Array<{ id: string; name: string; status: SandboxRecord["status"]; reallocated: string[] }>;
  /** Directories that could not give a row back, and why. */
  skipped: Array<{ dir: string; reason: string }>;
  /** Rows the store had already. */
  unchanged: number;
}

export function repairStore(): RepairReport {
  const file = paths.stateDb();
  const report: RepairReport = { damage: null, movedAside: null, restored: [], skipped: [], unchanged: 0 };
  try {
    withStore((store) => store.list());
  } catch (error) {
    if (!(error instanceof SmolError) || error.code !== "STATE_CORRUPT") throw error;
    report.damage = error.message;
    report.movedAside = `${file}.damaged-${new Date().toISOString().replace(/[:.]/g, "-")}`;
    for (const suffix of ["", "-wal", "-shm"]) {
      if (existsSync(`${file}${suffix}`)) renameSync(`${file}${suffix}`, `${report.movedAside}${suffix}`);
    }
  }
  withStore((store) => {
    const known = new Set(store.list().map((vm) => vm.id));
    report.unchanged = known.size;
    for (const id of sandboxDirs()) {
      if (known.has(id)) continue;
      const dir = join(paths.sandboxesDir(), id);
      const text = readMirrorText(id);
      if (text === undefined) {
        report.skipped.push({ dir, reason: "it has no sandbox.json (it was made by a smolvm before this one, or is not a sandbox's); `smolvm cleanup` removes it if it holds no disk" });
        continue;
      }
      let mirror: SandboxRecord | undefined;
      try {
        mirror = recordFromMirror(JSON.parse(text));
        // Its config is checked when first read (a throw here): before it is restored, not after.
        void mirror.config;
      } catch {
        mirror = undefined;
      }
      if (mirror === undefined || mirror.id !== id) {
        report.skipped.push({ dir, reason: "its sandbox.json is not valid" });
        continue;
      }
      try {
        const { record, reallocated } = store.restore(asItIsNow(mirror));
        report.restored.push({ id, name: record.name, status: record.status, reallocated });
      } catch (error) {
        report.skipped.push({ dir, reason: (error as Error).message });
      }
    }
  });
  return report;
}

/** The mirrored row, with its state made true to what runs now. */
function asItIsNow(mirror: SandboxRecord): SandboxRecord {
  const running = sandboxProcesses(mirror.id, [mirror.vmmPid, mirror.supervisorPid]);
  const vmm = running.find((p) => p.role === "vmm")?.pid ?? null;
  const supervisor = running.find((p) => p.role === "supervisor")?.pid ?? null;
  if (vmm !== null) return { ...mirror, vmmPid: vmm, supervisorPid: supervisor };
  const wasUp = mirror.status === "running" || mirror.status === "paused" || mirror.status === "creating";
  return {
    ...mirror,
    status: wasUp ? "failed" : mirror.status,
    vmmPid: null,
    supervisorPid: null,
    lastError: wasUp ? { code: "NOT_RUNNING", message: "its VM ended while the state store was damaged (its row was rebuilt by `smolvm doctor --repair`)" } : mirror.lastError,
  };
}

function sandboxDirs(): string[] {
  try {
    return readdirSync(paths.sandboxesDir(), { withFileTypes: true }).filter((entry) => entry.isDirectory()).map((entry) => entry.name);
  } catch {
    return [];
  }
}
