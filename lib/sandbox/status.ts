/**
 * The one authority on whether a sandbox is live and whether an action may run on it.
 *
 * Reading a record reconciles it with reality: a sandbox recorded as running whose supervisor
 * and VMM are both gone is marked failed, so nothing ever acts on (or lists) a ghost. `refusal`
 * is the single place that says "it is paused", "it is stopped" and what to do about it, for
 * a record read from the store and for the state a supervisor reports in its HELLO alike.
 */
import { NotRunningError, SmolError } from "../errors.ts";
import { identityAlive } from "../host/pids.ts";
import { readLauncher } from "./launcher.ts";
import { sandboxFiles } from "./layout.ts";
import { sandboxProcesses, stillOurs } from "./processes.ts";
import { StateStore, withStore } from "../state/sandboxes.ts";
import type { SandboxError, SandboxRecord, SandboxStatus } from "../state/record.ts";

/** One sandbox as `list` shows it. */
export interface SandboxSummary {
  id: string;
  name: string;
  status: SandboxStatus;
  image: string;
  vcpus: number;
  memoryMiB: number;
  backend: string | null;
  createdAt: number;
  /** Why it last failed, as `{code, message}`; null when it did not. */
  lastError: SandboxError | null;
}

const LIVE: ReadonlySet<SandboxStatus> = new Set(["running", "paused"]);

/** Running or paused: it has a VM and a supervisor (or is about to be noticed as gone). */
export function isLive(status: SandboxStatus): boolean {
  return LIVE.has(status);
}

/**
 * Marks a record failed when everything that should be running it has exited (a recorded pid
 * that now names another program counts as exited), or when the create or start that was booting
 * it died half-way (launcher.ts).
 */
export function reconcile(store: StateStore, vm: SandboxRecord): SandboxRecord {
  if (vm.status === "creating") return reconcileBoot(store, vm);
  if (!isLive(vm.status)) return vm;
  if (stillOurs(vm.id, vm.supervisorPid) || stillOurs(vm.id, vm.vmmPid)) return vm;
  return store.update(vm.id, {
    status: "failed",
    lastError: vm.lastError ?? { code: "NOT_RUNNING", message: "its supervisor and VM processes exited unexpectedly" },
    supervisorPid: null,
    vmmPid: null,
  });
}

function reconcileBoot(store: StateStore, vm: SandboxRecord): SandboxRecord {
  const launcher = readLauncher(sandboxFiles(vm.id));
  if (launcher !== undefined && identityAlive(launcher)) return vm;
  // A supervisor that took the boot over finishes it (or undoes an abandoned create itself); a
  // VMM alone is what the dead launcher left behind (`cleanup` ends it).
  if (sandboxProcesses(vm.id, [vm.vmmPid, vm.supervisorPid]).some((p) => p.role === "supervisor")) return vm;
  const message = launcher?.purpose === "create"
    ? `its create was interrupted: the process that ran it (pid ${launcher.pid}) exited before the sandbox was ready; \`smolvm cleanup\` removes it`
    : "its boot was interrupted: the process that started it exited before the sandbox was ready";
  return store.update(vm.id, { status: "failed", lastError: { code: "NOT_RUNNING", message }, supervisorPid: null, vmmPid: null });
}

/** The record of a sandbox by id or name, reconciled (NotFoundError when there is none). */
export function readSandbox(idOrName: string): SandboxRecord {
  return withStore((store) => reconcile(store, store.get(idOrName)));
}

/**
 * What may be done to a sandbox, by what it needs: `reach` a running guest (commands, files,
 * env, forwards), `control` a live VM (pause, resume, list ports), `boot` a stopped one.
 */
export type SandboxAction =
  | { kind: "reach"; what: string }
  | { kind: "control"; what: string }
  | { kind: "boot"; what: string };

/** Why `action` may not run on a sandbox in this state, or undefined when it may. */
export function refusal(vm: { name: string; status: SandboxStatus; lastError?: SandboxError | null }, action: SandboxAction): SmolError | undefined {
  const allowed = action.kind === "reach" ? vm.status === "running"
    : action.kind === "control" ? isLive(vm.status)
    : vm.status === "stopped" || vm.status === "failed";
  if (allowed) return undefined;
  // Paused by its VMM, not by anyone's request: the reason is the answer.
  if (vm.status === "paused" && vm.lastError?.code === "HOST_DISK_FULL") {
    return new SmolError("HOST_DISK_FULL", `Cannot ${action.what} sandbox "${vm.name}": ${vm.lastError.message.replace(/^Sandbox "[^"]*" is /, "it is ")}`, {
      hint: `free space there, then \`smolvm resume ${vm.name}\`: the guest goes on where it was and nothing is lost`,
      details: { lastError: vm.lastError },
    });
  }
  const details = vm.lastError === undefined || vm.lastError === null ? undefined : { lastError: vm.lastError };
  const hint = vm.status === "paused" ? `resume it with \`smolvm resume ${vm.name}\``
    : vm.status === "stopped" || vm.status === "failed" ? `start it with \`smolvm start ${vm.name}\``
    : vm.status === "deleting" ? "create a new one with `smolvm create`"
    : action.kind === "boot" ? `it is running already; \`smolvm stop ${vm.name}\` first to boot it again`
    : "wait for it to finish";
  return new NotRunningError(`Cannot ${action.what} sandbox "${vm.name}": it is ${vm.status}`, {
    hint,
    ...(details === undefined ? {} : { details }),
  });
}

/** Throws the refusal, if there is one. */
export function assertMay(vm: Parameters<typeof refusal>[0], action: SandboxAction): void {
  const refused = refusal(vm, action);
  if (refused !== undefined) throw refused;
}

export function summarize(vm: SandboxRecord): SandboxSummary {
  return {
    id: vm.id,
    name: vm.name,
    status: vm.status,
    image: vm.config.image,
    vcpus: vm.config.vcpus,
    memoryMiB: vm.config.memoryMiB,
    backend: vm.backend,
    createdAt: vm.createdAt,
    lastError: vm.lastError,
  };
}

/** Every sandbox in the state store, reconciled. */
export async function listSandboxes(): Promise<SandboxSummary[]> {
  return withStore((store) => store.list().map((vm) => summarize(reconcile(store, vm))));
}

/** Names only, for shell completion: must be fast and must never fail loudly. */
export function sandboxNames(): string[] {
  try {
    return withStore((store) => store.list().map((vm) => vm.name));
  } catch {
    return [];
  }
}
