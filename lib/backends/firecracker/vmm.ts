/**
 * Running one sandbox's Firecracker: carrying out a launch plan (files, jail, process, API calls),
 * re-attaching to a running one, and the lifecycle operations over its API. A backend wrapper calls
 * these; everything Firecracker-specific stays in this folder.
 *
 * A failed launch leaves nothing behind: the process is killed and waited for, its sockets and jail
 * removed, and the error carries Firecracker's own words (its fault message, or the last lines of
 * its stderr when it exited).
 */
import { chown, copyFile, link, mkdir, readFile, rename, rm, rmdir, writeFile } from "node:fs/promises";
import { dirname } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { CommandFailedError, SmolError } from "../../errors.ts";
import { pidAlive } from "../../host/pids.ts";
import { tailOf } from "../../util/tail.ts";
import { FirecrackerApi } from "./api.ts";
import type { SnapshotType } from "./api-types.ts";
import { hostPathInJail, JAIL_PATHS, type JailerOptions } from "./jailer.ts";
import {
  type FirecrackerLaunchPlan, type FirecrackerVmSpec, planBoot, planRestore, type RestoreOptions, type SnapshotFiles,
} from "./plan.ts";
import { type FirecrackerProcess, spawnFirecracker, waitForApi } from "./process.ts";

export interface FirecrackerLaunchOptions {
  /** The firecracker binary (from `canRunHere`). */
  binary: string;
  /** Run under the jailer (root only). `firecrackerBinary` there should equal `binary`. */
  jailer?: JailerOptions;
  /** The guest's serial console (Firecracker's stdout) is appended here. */
  serialLogPath?: string;
  /** Firecracker's stderr is appended here. */
  vmmLogPath?: string;
  /** Deadline for the API socket to answer. Default 10 s. */
  timeoutMs?: number;
  /** Called with the spawned pid the moment the process exists, before anything can fail (LaunchSpec.onProcess). */
  onProcess?: (pid: number) => void;
}

export interface RunningFirecracker {
  /** Firecracker's pid (under the jailer without a new pid namespace, the pid spawned). */
  pid: number;
  /** Resolves when Firecracker ends. */
  exited: Promise<{ code: number | null; signal: string | null }>;
  api: FirecrackerApi;
  plan: FirecrackerLaunchPlan;
  kill(signal?: NodeJS.Signals): void;
}

/** Starts Firecracker and boots `spec`; resolves once InstanceStart has been accepted. */
export function bootFirecracker(spec: FirecrackerVmSpec, options: FirecrackerLaunchOptions): Promise<RunningFirecracker> {
  return launchPlan(planBoot(spec, options.jailer === undefined ? {} : { jailer: options.jailer }), options);
}

/** Starts Firecracker and loads a snapshot of `spec`'s sandbox (paused unless `restore.resume`). */
export function restoreFirecracker(spec: FirecrackerVmSpec, restore: RestoreOptions, options: FirecrackerLaunchOptions): Promise<RunningFirecracker> {
  return launchPlan(planRestore(spec, restore, options.jailer === undefined ? {} : { jailer: options.jailer }), options);
}

/** Carries out a plan from planBoot or planRestore. */
export async function launchPlan(plan: FirecrackerLaunchPlan, options: FirecrackerLaunchOptions): Promise<RunningFirecracker> {
  let vmm: FirecrackerProcess | undefined;
  try {
    await prepareFiles(plan);
    vmm = await spawnFirecracker({
      binary: plan.program === "jailer" ? options.jailer!.jailerBinary : options.binary,
      argv: plan.argv,
      ...(options.serialLogPath === undefined ? {} : { serialLogPath: options.serialLogPath }),
      ...(options.vmmLogPath === undefined ? {} : { vmmLogPath: options.vmmLogPath }),
    });
    options.onProcess?.(vmm.pid);
    const api = new FirecrackerApi(plan.apiSocketPath, { logPath: plan.logPath });
    await waitForApi(api, { timeoutMs: options.timeoutMs ?? 10_000, exited: vmm.exited });
    await api.sendAll(plan.calls);
    return plan.jail?.pidFile === undefined
      ? { pid: vmm.pid, exited: vmm.exited, api, plan, kill: vmm.kill }
      : await jailedProcess(plan.jail.pidFile, api, plan);
  } catch (error) {
    let exit: { code: number | null; signal: string | null } | undefined;
    if (vmm) {
      // It often dies of the same cause a moment later: prefer its exit status and words.
      exit = await Promise.race([vmm.exited, sleep(300).then(() => undefined)]);
      vmm.kill("SIGKILL");
      await vmm.exited;
    }
    await cleanupFirecracker(plan);
    if (exit && !(error instanceof SmolError && error.code === "COMMAND_FAILED")) {
      const tail = tailOf(options.vmmLogPath, 5);
      const how = exit.signal ? `was killed by ${exit.signal}` : `exited with status ${exit.code}`;
      throw new CommandFailedError(`Cannot start Firecracker: it ${how}${tail ? `: ${tail.replaceAll("\n", " | ")}` : ""}`, {
        cause: error,
        hint: options.vmmLogPath ? `see "${options.vmmLogPath}" and "${plan.logPath}"` : `see "${plan.logPath}"`,
        details: { exit },
      });
    }
    throw error;
  }
}

/** Creates the log and metrics files, clears stale sockets and fills the jail. */
async function prepareFiles(plan: FirecrackerLaunchPlan): Promise<void> {
  for (const socket of plan.socketsToClear) await rm(socket, { force: true });
  if (plan.jail) {
    const { chrootDir, uid, gid } = plan.jail;
    // A jail left by an earlier run: the jailer refuses to make its device nodes over old ones.
    await rm(plan.jail.instanceDir, { recursive: true, force: true });
    await mkdir(chrootDir, { recursive: true });
    for (const item of plan.stage) {
      await mkdir(dirname(item.jailedHostPath), { recursive: true });
      await rm(item.jailedHostPath, { force: true });
      try {
        await link(item.hostPath, item.jailedHostPath);
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code !== "EXDEV") throw error;
        await copyFile(item.hostPath, item.jailedHostPath);
      }
      // A hard link shares the inode: never loosen a mode here, only hand over what is the sandbox's own.
      if (item.ownedByJail) await chown(item.jailedHostPath, uid, gid);
    }
  }
  for (const file of plan.outputFiles) {
    await mkdir(dirname(file), { recursive: true });
    await writeFile(file, "", { flag: "a" });
    if (plan.jail) await chown(file, plan.jail.uid, plan.jail.gid);
  }
}

async function jailedProcess(pidFile: string, api: FirecrackerApi, plan: FirecrackerLaunchPlan): Promise<RunningFirecracker> {
  const pid = Number((await readFile(pidFile, "utf8")).trim());
  if (!Number.isInteger(pid) || pid <= 1) throw new CommandFailedError(`Cannot start Firecracker: its pid file "${pidFile}" holds no pid`);
  const exited = (async () => {
    while (pidAlive(pid)) await sleep(50);
    return { code: null, signal: null };
  })();
  return {
    pid,
    exited,
    api,
    plan,
    kill: (signal: NodeJS.Signals = "SIGKILL") => {
      try {
        process.kill(pid, signal);
      } catch { /* already gone */ }
    },
  };
}

/**
 * Removes what a launch made around Firecracker: its sockets and, under the jailer, the jail and
 * the cgroups the jailer created. Call it once Firecracker has exited; safe to call twice.
 */
export async function cleanupFirecracker(plan: FirecrackerLaunchPlan): Promise<void> {
  for (const socket of plan.socketsToClear) await rm(socket, { force: true });
  if (plan.jail) {
    await rm(plan.jail.instanceDir, { recursive: true, force: true });
    for (const dir of plan.jail.cgroupDirs) await rmdir(dir).catch(() => {});
  }
}

/** A client for a Firecracker started earlier (by another process); checks that it answers. */
export async function attachFirecracker(apiSocketPath: string, options: { logPath?: string; timeoutMs?: number } = {}): Promise<FirecrackerApi> {
  const api = new FirecrackerApi(apiSocketPath, {
    ...(options.logPath === undefined ? {} : { logPath: options.logPath }),
    ...(options.timeoutMs === undefined ? {} : { timeoutMs: options.timeoutMs }),
  });
  await api.describeInstance();
  return api;
}

export interface FirecrackerStatus {
  state: "running" | "paused" | "other";
  /** Firecracker's own word: "Running", "Paused", "Not started". */
  detail: string;
}

export async function firecrackerStatus(api: FirecrackerApi): Promise<FirecrackerStatus> {
  const info = await api.describeInstance();
  const state = info.state === "Running" ? "running" : info.state === "Paused" ? "paused" : "other";
  return { state, detail: info.state };
}

/**
 * Writes a snapshot of the paused VM to `files`. Under the jailer Firecracker can only write inside
 * its jail, so the files are written there and moved out. Firecracker resets the guest's vsock
 * connections when it snapshots: reconnect the agent afterwards.
 */
export async function saveSnapshot(
  running: Pick<RunningFirecracker, "api" | "plan">,
  files: SnapshotFiles,
  options: { type?: SnapshotType; timeoutMs?: number } = {},
): Promise<void> {
  const jail = running.plan.jail;
  const target = jail
    ? { statePath: hostPathInJail(jail, JAIL_PATHS.snapshotState), memPath: hostPathInJail(jail, JAIL_PATHS.snapshotMemory) }
    : files;
  await mkdir(dirname(target.statePath), { recursive: true });
  await mkdir(dirname(files.statePath), { recursive: true });
  await mkdir(dirname(files.memPath), { recursive: true });
  if (jail) await chown(dirname(target.statePath), jail.uid, jail.gid);
  await running.api.createSnapshot({
    snapshot_path: jail ? JAIL_PATHS.snapshotState : files.statePath,
    mem_file_path: jail ? JAIL_PATHS.snapshotMemory : files.memPath,
    snapshot_type: options.type ?? "Full",
  }, options.timeoutMs === undefined ? {} : { timeoutMs: options.timeoutMs });
  if (jail) {
    await rename(target.statePath, files.statePath);
    await rename(target.memPath, files.memPath);
  }
}
