/**
 * Read-side views of sandboxes shared by the SDK and the CLI. Reading reconciles the record with
 * reality: a sandbox recorded as running whose supervisor and VMM are both gone is marked failed,
 * so `list` never shows a ghost as running.
 */
import { pidAlive } from "./host/pids.ts";
import { StateStore, type VmRecord, type VmStatus } from "./state/vms.ts";

export interface SandboxSummary {
  id: string;
  name: string;
  status: VmStatus;
  image: string;
  vcpus: number;
  memoryMiB: number;
  backend: string | null;
  createdAt: number;
  lastError: string | null;
}

const LIVE_STATUSES: ReadonlySet<VmStatus> = new Set(["running", "paused"]);

/** Marks a record failed when everything that should be running it has exited. */
export function reconcile(store: StateStore, vm: VmRecord): VmRecord {
  if (!LIVE_STATUSES.has(vm.status)) return vm;
  if (pidAlive(vm.supervisorPid) || pidAlive(vm.vmmPid)) return vm;
  return store.updateVm(vm.id, {
    status: "failed",
    lastError: vm.lastError ?? "its supervisor and VM processes exited unexpectedly",
    supervisorPid: null,
    vmmPid: null,
  });
}

export function summarize(vm: VmRecord): SandboxSummary {
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

export async function listSandboxes(): Promise<SandboxSummary[]> {
  const store = StateStore.open();
  try {
    return store.listVms().map((vm) => summarize(reconcile(store, vm)));
  } finally {
    store.close();
  }
}

/** Names only, for shell completion: must be fast and must never fail loudly. */
export function sandboxNames(): string[] {
  let store: StateStore | undefined;
  try {
    store = StateStore.open();
    return store.listVms().map((vm) => vm.name);
  } catch {
    return [];
  } finally {
    store?.close();
  }
}
