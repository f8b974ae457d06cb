/**
 * The supervisor's part of a snapshot: it owns the VMM, so it stops the guest, has the backend
 * write the machine state and copy the disk into the caller's directory, and runs the guest
 * again. Storing them (compression, checksums, the manifest) is the caller's work
 * (lib/snapshots/save.ts), done while the guest runs.
 *
 * The stop is recorded in `vms/<id>/snapshotting.json` for as long as it lasts: a supervisor that
 * dies meanwhile leaves the VM stopped, and the one that takes it over reads the marker and runs
 * it again (`interruptedSnapshot`), so a snapshot never leaves its source paused.
 *
 * A restore is the other way round: its creator starts the VMM from the snapshot while the
 * supervisor starts, and hands the VM over with its ticket (`restoredTicket`).
 */
import { existsSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { resolve, sep } from "node:path";
import { snapshotSupport } from "../backends/select.ts";
import type { Backend, Vmm, VmmTicket } from "../backends/types.ts";
import { InvalidInputError } from "../errors.ts";
import { paths } from "../paths.ts";
import type { SandboxFiles } from "../sandbox/layout.ts";
import { liveTicket } from "../sandbox/ticket.ts";
import type { SandboxRecord } from "../state/record.ts";
import type { SupervisorResult } from "../agent/supervisor-messages.ts";
import { pollUntil } from "../util/poll.ts";

export type SnapshotTaken = SupervisorResult<"supervisor.snapshot">;

/** Refuses a directory outside the smolvm home's snapshot areas, or one that is not empty. */
function checkTarget(dir: string): string {
  const target = resolve(dir);
  const inside = [paths.snapshotsDir(), paths.warmDir()].some((root) => target.startsWith(`${resolve(root)}${sep}`));
  let ok = inside;
  try {
    ok &&= statSync(target).isDirectory();
  } catch {
    ok = false;
  }
  if (!ok) {
    throw new InvalidInputError(`Cannot snapshot into "${dir}": expected an existing directory under "${paths.snapshotsDir()}" or "${paths.warmDir()}"`);
  }
  return target;
}

/** Stops the guest (unless paused), saves its state and disk into `dir`, and runs it again as it was. */
export async function takeSnapshot(options: {
  vm: SandboxRecord;
  files: SandboxFiles;
  vmm: Vmm;
  backend: Backend;
  dir: string;
  paused: boolean;
}): Promise<SnapshotTaken> {
  const { vm, files, vmm, backend, paused } = options;
  const dir = checkTarget(options.dir);
  if (vm.config.diskMode !== "isolated") {
    throw new InvalidInputError(`Cannot snapshot sandbox "${vm.name}": its disk is the image itself (--disk-mode ${vm.config.diskMode})`, {
      hint: "snapshots need an isolated disk, the default",
    });
  }
  writeFileSync(files.snapshotMarker, `${JSON.stringify({ wasPaused: paused, supervisorPid: process.pid })}\n`, { mode: 0o600 });
  const started = performance.now();
  let pausedMs = 0;
  try {
    if (!paused) await vmm.pause();
    await vmm.saveState(dir);
    // The disk is consistent now: the VMM flushed it when it stopped and writes nothing more.
    const disk = await backend.prepareDisk({ imagePath: vm.config.rootfsPath!, vmDir: files.dir, mode: vm.config.diskMode });
    await snapshotSupport(backend, `snapshot sandbox "${vm.name}"`).captureDisk(disk, dir);
  } finally {
    if (!paused) {
      await vmm.resume();
      pausedMs = performance.now() - started;
    }
    rmSync(files.snapshotMarker, { force: true });
  }
  return { accel: vmm.ticket.accel, pausedMs, wasPaused: paused };
}

/**
 * A VM that its last supervisor stopped for a snapshot and never ran again: whether it ran
 * before (then it runs again now), or undefined when no snapshot was under way.
 */
export function interruptedSnapshot(files: SandboxFiles): { wasPaused: boolean } | undefined {
  if (!existsSync(files.snapshotMarker)) return undefined;
  try {
    const marker = JSON.parse(readFileSync(files.snapshotMarker, "utf8")) as { wasPaused?: unknown };
    return { wasPaused: marker.wasPaused === true };
  } catch {
    // Half written: the stop had not happened yet, or the marker is ours alone; run it.
    return { wasPaused: false };
  }
}

export function clearInterruptedSnapshot(files: SandboxFiles): void {
  rmSync(files.snapshotMarker, { force: true });
}

/**
 * Snapshots of one VM, one at a time: a pause, resume or stop waits for the one under way (each
 * would undo the other's stop), and while the guest is stopped for one its silence means nothing.
 */
export class SnapshotGate {
  private saving: Promise<unknown> = Promise.resolve();
  /** Whether the guest is stopped for a snapshot now. */
  active = false;

  /** Resolves once no snapshot is under way. */
  idle(): Promise<unknown> {
    return this.saving;
  }

  take(save: () => Promise<SnapshotTaken>): Promise<SnapshotTaken> {
    const taken = this.saving.then(async () => {
      this.active = true;
      try {
        return await save();
      } finally {
        this.active = false;
      }
    });
    this.saving = taken.catch(() => {});
    return taken;
  }
}

/**
 * The ticket of a VM its creator is restoring (the restore marker says one comes once the state
 * is in); "abandoned" when the restore was: its marker gone (a failed restore removes the
 * sandbox) or `abandoned()` true; undefined when no restore is under way. Never a boot of the
 * supervisor's own instead.
 */
export async function restoredTicket(files: SandboxFiles, deadline: number, abandoned: () => boolean): Promise<VmmTicket | "abandoned" | undefined> {
  if (!existsSync(files.restoreMarker)) return undefined;
  const handed = await pollUntil(() => {
    if (abandoned()) return { ticket: "abandoned" as const };
    const now = liveTicket(files);
    return now !== undefined ? { ticket: now } : existsSync(files.restoreMarker) ? undefined : { ticket: "abandoned" as const };
  }, { timeoutMs: Math.max(1, deadline - Date.now()), intervalMs: 5, what: "the restored VM to be handed over" });
  return handed.ticket;
}

/**
 * How a VM its supervisor finds at start runs on: a fresh restore runs for the first time (and is
 * given its identity); one its last supervisor stopped for a snapshot runs as it did before; one
 * paused when its last supervisor died stays paused (thawed only to greet its agent).
 */
export function takeOverState(files: SandboxFiles, pausedNow: boolean): { restored: boolean; wasPaused: boolean } {
  const restored = existsSync(files.restoreMarker);
  return { restored, wasPaused: restored ? false : interruptedSnapshot(files)?.wasPaused ?? pausedNow };
}

/** Runs a VM its supervisor found paused (to greet its agent, or on after a snapshot or restore): an interrupted snapshot is over then. */
export async function thaw(vmm: Vmm, files: SandboxFiles, pausedNow: boolean): Promise<void> {
  if (pausedNow) await vmm.resume();
  clearInterruptedSnapshot(files);
}
