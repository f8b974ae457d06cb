/**
 * Timed sandbox operations for the bench runner, through the public SDK as a caller sees them,
 * plus the "until every resource is freed" clocks that keep running after the SDK returns.
 */
import { existsSync, readFileSync } from "node:fs";
import { pidAlive } from "../lib/host/pids.ts";
import { paths } from "../lib/paths.ts";
import { type CreateSandboxOptions, SmolVM } from "../lib/smolvm.ts";
import { StateStore } from "../lib/state/sandboxes.ts";
import { privateMiB, processStartEpochMs, rssMiB } from "./_proc.ts";
import { findReadyEvent, type CreateTiming } from "./profile.ts";

export interface CreatedSandbox {
  vm: SmolVM;
  createMs: number;
  /** create() called -> first command's result. */
  toFirstCommandMs: number;
  firstCommandMs: number;
  timing: CreateTiming;
}

/** Creates a sandbox, runs `true` in it, and records when each hop happened. */
export async function createAndFirstCommand(options: {
  image: string;
  name: string;
  track: (vm: SmolVM) => void;
  /** More create options (the backend and its network). */
  sandbox?: Partial<CreateSandboxOptions>;
}): Promise<CreatedSandbox> {
  const calledAt = Date.now();
  const t0 = performance.now();
  // A cold create: a warm template of the image, if the home has one, is measured on its own.
  const vm = await SmolVM.create({ ...options.sandbox, image: options.image, name: options.name, warm: false });
  const created = performance.now();
  const returnedAt = Date.now();
  options.track(vm);
  const first = await vm.commands.run(["true"]);
  const done = performance.now();
  if (first.exitCode !== 0) throw new Error(`the first command in "${options.name}" exited with ${first.exitCode}: ${first.stderr}`);
  const info = await vm.info();
  const ready = readReadyEvent(vm.id);
  const timing: CreateTiming = {
    calledAt,
    returnedAt,
    firstCommandMs: done - created,
    firstCommandGuestMs: first.durationMs,
    ...optional("supervisorStartedAt", info.supervisorPid === null ? undefined : processStartEpochMs(info.supervisorPid)),
    ...optional("qemuStartedAt", info.vmmPid === null ? undefined : processStartEpochMs(info.vmmPid)),
    ...optional("readyLoggedAt", ready?.at),
    ...optional("agentBootTimeMs", ready?.bootTimeMs),
  };
  return { vm, createMs: created - t0, toFirstCommandMs: done - t0, firstCommandMs: done - created, timing };
}

function optional<K extends string>(key: K, value: number | undefined): { [P in K]?: number } {
  return (value === undefined ? {} : { [key]: value }) as { [P in K]?: number };
}

function readReadyEvent(vmId: string): { at: number; bootTimeMs?: number } | undefined {
  try {
    return findReadyEvent(readFileSync(paths.logFile(), "utf8"), vmId);
  } catch {
    return undefined;
  }
}

/** Host memory of a running sandbox, MiB: QEMU's and its supervisor's resident set, and the private part of each. */
export async function sandboxMemory(vm: SmolVM): Promise<{ qemu?: number; supervisor?: number; qemuPrivate?: number; supervisorPrivate?: number }> {
  const info = await vm.info();
  const of = (pid: number | null, read: (pid: number) => number | undefined) => (pid === null ? undefined : read(pid));
  return {
    ...optional("qemu", of(info.vmmPid, rssMiB)),
    ...optional("supervisor", of(info.supervisorPid, rssMiB)),
    ...optional("qemuPrivate", of(info.vmmPid, privateMiB)),
    ...optional("supervisorPrivate", of(info.supervisorPid, privateMiB)),
  };
}

/** Polls every millisecond until `done()` holds; returns the elapsed ms since `since`. */
async function until(done: () => boolean, since: number, timeoutMs: number, what: string): Promise<number> {
  const deadline = Date.now() + timeoutMs;
  while (!done()) {
    if (Date.now() > deadline) throw new Error(`${what} did not happen within ${timeoutMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, 1));
  }
  return performance.now() - since;
}

/** Stops a sandbox: caller-visible time, and time until its VMM and supervisor are gone. */
export async function timedStop(vm: SmolVM): Promise<{ stopMs: number; freedMs: number }> {
  const info = await vm.info();
  const t0 = performance.now();
  await vm.stop();
  const stopMs = performance.now() - t0;
  const freedMs = await until(() => !pidAlive(info.vmmPid) && !pidAlive(info.supervisorPid), t0, 30_000, "the stopped sandbox's processes exiting");
  return { stopMs, freedMs };
}

/** Starts a stopped sandbox; the time until it answers again. */
export async function timedStart(vm: SmolVM): Promise<number> {
  const t0 = performance.now();
  await vm.start();
  return performance.now() - t0;
}

function rowExists(id: string): boolean {
  const store = StateStore.open();
  try {
    return store.find(id) !== undefined;
  } finally {
    store.close();
  }
}

/**
 * Deletes a sandbox: caller-visible time, and time until every resource is freed (VMM and
 * supervisor gone, its directory removed, its row gone).
 */
export async function timedDelete(vm: SmolVM): Promise<{ deleteMs: number; freedMs: number }> {
  const info = await vm.info();
  const t0 = performance.now();
  await vm.delete();
  const deleteMs = performance.now() - t0;
  const freedMs = await until(
    () => !pidAlive(info.vmmPid) && !pidAlive(info.supervisorPid) && !existsSync(info.dir) && !rowExists(vm.id),
    t0, 30_000, "the deleted sandbox's cleanup",
  );
  return { deleteMs, freedMs };
}
