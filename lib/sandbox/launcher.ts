/**
 * Who is booting a sandbox right now (`vms/<id>/launcher.json`): the create or start that set it
 * to `creating`, named for good (pid and start time). It is written before anything is launched
 * and removed once the boot's caller has its answer, so a `creating` sandbox whose launcher is
 * gone was abandoned half-way, and everyone can tell:
 *
 * - a create whose caller died is undone: by its supervisor at once if one runs the sandbox
 *   already (it watches the launcher), else by the next `smolvm cleanup`; `list` shows it failed
 *   meanwhile, "its create was interrupted";
 * - a start whose caller died leaves the sandbox as far as it got: running if its supervisor
 *   took over, else failed with the reason (its disk is the user's, and `start` tries again).
 */
import { readFileSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { identityAlive, selfIdentity, type ProcessIdentity } from "../host/pids.ts";
import { lazySchema, z } from "../zod.ts";
import type { SandboxFiles } from "./layout.ts";

export type LaunchPurpose = "create" | "start";

export interface Launcher extends ProcessIdentity {
  purpose: LaunchPurpose;
}

const launcherSchema = lazySchema(() => z.object({
  pid: z.int().check(z.positive()),
  startTicks: z.optional(z.number()),
  purpose: z.enum(["create", "start"]),
}));

export function launcherFile(files: SandboxFiles): string {
  return `${files.dir}/launcher.json`;
}

/** Says this process is booting the sandbox, for `purpose`. */
export function writeLauncher(files: SandboxFiles, purpose: LaunchPurpose): void {
  const file = launcherFile(files);
  const temp = `${file}.${process.pid}.tmp`;
  writeFileSync(temp, `${JSON.stringify({ ...selfIdentity(), purpose })}\n`, { mode: 0o600 });
  renameSync(temp, file);
}

/** The boot in progress, if any was recorded (a malformed record counts as none). */
export function readLauncher(files: SandboxFiles): Launcher | undefined {
  try {
    const parsed = launcherSchema.safeParse(JSON.parse(readFileSync(launcherFile(files), "utf8")));
    return parsed.success ? (parsed.data as Launcher) : undefined;
  } catch {
    return undefined;
  }
}

/** The boot's caller has its answer: the sandbox is its own from here. */
export function removeLauncher(files: SandboxFiles): void {
  rmSync(launcherFile(files), { force: true });
}

/** A recorded boot whose caller is gone before it finished. */
export function abandoned(files: SandboxFiles): Launcher | undefined {
  const launcher = readLauncher(files);
  return launcher !== undefined && !identityAlive(launcher) ? launcher : undefined;
}
