/**
 * Creating, starting, stopping and deleting sandboxes. Everything here keeps one promise: a
 * failure leaves nothing behind (no process, socket, overlay or state row) and says why.
 */
import { mkdirSync, rmSync } from "node:fs";
import { setTimeout as sleep } from "node:timers/promises";
import { parseVmConfig, type AccelChoice, type VmConfig, type VmConfigInput } from "../config.ts";
import { BackendUnavailableError, NotRunningError, smolError, toSmolError } from "../errors.ts";
import { pidAlive } from "../host/pids.ts";
import { logEvent } from "../log.ts";
import { paths } from "../paths.ts";
import { vmFiles } from "../supervisor/layout.ts";
import { spawnSupervisor } from "../supervisor/spawn.ts";
import { StateStore, withStore, type VmRecord } from "../state/vms.ts";
import { reconcile } from "../sandboxes.ts";
import { prepareArtifacts, type PrepareProgress } from "./artifacts.ts";
import { waitForReady } from "./ready.ts";
import { persistedChannel } from "../channels/resolve.ts";

export interface CreateOptions {
  onProgress?: (progress: PrepareProgress) => void;
}

/** Resolves `auto` and refuses what this host cannot run, before anything is allocated. */
function chooseBackend(config: VmConfig): "qemu" {
  const wanted = config.backend === "auto" ? (process.env.SMOLVM_BACKEND ?? "auto") : config.backend;
  if (wanted === "firecracker") {
    throw new BackendUnavailableError("Cannot use the firecracker backend: it is not supported by this build yet", {
      hint: "use the QEMU backend: leave the backend choice out, or set SMOLVM_BACKEND=qemu",
    });
  }
  if (wanted !== "auto" && wanted !== "qemu") {
    throw new BackendUnavailableError(`Unknown backend "${wanted}" (from SMOLVM_BACKEND)`, { hint: "use qemu, firecracker or auto" });
  }
  return "qemu";
}

/** Creates a sandbox and returns once its agent answers. */
export async function createSandbox(input: VmConfigInput = {}, options: CreateOptions = {}): Promise<VmRecord> {
  const requested = parseVmConfig(input);
  const backend = chooseBackend(requested);
  const artifacts = await prepareArtifacts(requested, options.onProgress);
  const config: VmConfig = { ...requested, kernelPath: artifacts.kernelPath, rootfsPath: artifacts.rootfsPath };
  const vm = withStore((store) => {
    const created = store.createVm({ config, backend, allocate: { sshPort: config.network === "user" } });
    const channel = persistedChannel(config.channel);
    return channel === null ? created : store.updateVm(created.id, { channel });
  });
  try {
    options.onProgress?.({ phase: "boot", message: `booting ${vm.name}` });
    return await bootSandbox(vm);
  } catch (error) {
    destroyNow(vm.id);
    throw error;
  }
}

export interface StartOptions {
  /** The accelerator for this boot only; default the sandbox's own choice. */
  accel?: AccelChoice;
}

/** Starts the supervisor of a stopped (or failed) sandbox and waits for its agent. */
export async function startSandbox(idOrName: string, options: StartOptions = {}): Promise<VmRecord> {
  const vm = withStore((store) => reconcile(store, store.getVm(idOrName)));
  if (vm.status === "running" || vm.status === "paused") return vm;
  if (vm.status === "deleting") {
    throw new NotRunningError(`Cannot start sandbox "${vm.name}": it is being deleted`, {
      hint: "create a new one with `smolvm create`",
    });
  }
  return bootSandbox(options.accel === undefined ? vm : { ...vm, config: { ...vm.config, accel: options.accel } });
}

async function bootSandbox(vm: VmRecord): Promise<VmRecord> {
  // Launch the VMM here and let the supervisor attach to it: the guest boots while the
  // supervisor process starts, which takes a few hundred milliseconds of its own.
  const { launchVmm, vmmRunning } = await import("../supervisor/vmm.ts");
  const files = vmFiles(vm.id);
  if (!vmmRunning(vm, files)) {
    mkdirSync(files.dir, { recursive: true, mode: 0o700 });
    // A fresh boot starts without forwards; a list left by a crashed run is not this VM's.
    rmSync(files.forwards, { force: true });
    withStore((store) => store.updateVm(vm.id, { status: "creating", lastError: null }));
    try {
      const vmm = await launchVmm(vm, files);
      // QMP serves one client at a time, and the supervisor is about to be it.
      await vmm.control.close();
    } catch (thrown) {
      const error = toSmolError(thrown);
      withStore((store) => store.updateVm(vm.id, { status: "failed", lastError: `${error.code}: ${error.message}`, vmmPid: null }));
      // QEMU's log lives in the sandbox's directory, which a failed create removes: its whole
      // output goes to smolvm's own log first.
      logEvent("error", `sandbox "${vm.name}" failed to boot`, { sandbox: vm.id, error: error.message, ...(error.details ?? {}) });
      throw smolError(error.code, `Sandbox "${vm.name}" failed to boot: ${error.message}`, {
        // Not QEMU's own hint: it names files in the sandbox's directory, which a failed create removes.
        hint: `QEMU's full output is in ${paths.logFile()}; check the kernel and image it boots (\`smolvm kernel list\`, \`smolvm image list\`, or your --kernel/--rootfs) and the host (\`smolvm doctor\`)`,
        cause: thrown,
      });
    }
  }
  const supervisorPid = spawnSupervisor(vm.id);
  withStore((store) => store.updateVm(vm.id, { status: "creating", supervisorPid, lastError: null }));
  await waitForReady(vm, supervisorPid);
  // A sandbox that is to be used over SSH is ready when its sshd is.
  if (vm.channel === "ssh") await (await import("../ssh/state.ts")).waitForSsh(vm.id, { timeoutMs: vm.config.bootTimeoutMs });
  return withStore((store) => store.getVm(vm.id));
}

/**
 * Stops a sandbox: the agent syncs and powers the guest off, the supervisor records it and
 * exits. The disk (overlay) is kept for `start`.
 */
export async function stopSandbox(idOrName: string, options: { timeoutMs?: number } = {}): Promise<VmRecord> {
  const vm = withStore((store) => reconcile(store, store.getVm(idOrName)));
  if (vm.status === "stopped" || vm.status === "failed") return vm;
  const { requestSupervisor } = await import("../supervisor/client.ts");
  const timeoutMs = options.timeoutMs ?? 15_000;
  const deadline = Date.now() + timeoutMs;
  // Done when the supervisor has recorded the stop: it does so once QEMU is gone and its
  // sockets are removed, so a `start` right after cannot trip over them, and then hangs up on
  // its clients (its own process exit takes a few more milliseconds nobody needs to wait for).
  // The loop below is for a supervisor that died or hung instead.
  if (pidAlive(vm.supervisorPid)) {
    await requestSupervisor(vm.id, { op: "supervisor.stop" }, { untilClosed: true, timeoutMs }).catch(() => undefined);
  }
  const store = StateStore.open();
  try {
    for (;;) {
      const now = store.findVm(vm.id);
      if (now === undefined) return { ...vm, status: "stopped", supervisorPid: null, vmmPid: null };
      if (now.status === "stopped") return now;
      if (!pidAlive(vm.supervisorPid) && !pidAlive(vm.vmmPid)) break;
      if (Date.now() > deadline) {
        // A guest that ignored the shutdown, or a supervisor that hung: end them.
        killHard(vm);
        break;
      }
      await sleep(5);
    }
    return store.updateVm(vm.id, { status: "stopped", supervisorPid: null, vmmPid: null });
  } finally {
    store.close();
  }
}

/**
 * Deletes a sandbox. Returns at once: the supervisor tears the VM down behind the caller and
 * removes the row last, so its allocations are never handed out while QEMU still holds them.
 */
export async function deleteSandbox(idOrName: string): Promise<VmRecord> {
  const vm = withStore((store) => {
    const found = store.getVm(idOrName);
    store.updateVm(found.id, { status: "deleting" });
    return found;
  });
  if (pidAlive(vm.supervisorPid)) {
    const { requestSupervisor } = await import("../supervisor/client.ts");
    try {
      await requestSupervisor(vm.id, { op: "supervisor.destroy" }, { timeoutMs: 2_000 });
      return vm;
    } catch {
      // An unresponsive supervisor: fall through and clean up from here.
    }
  }
  destroyNow(vm.id);
  return vm;
}

/** Kills whatever runs the sandbox and removes its files and row, synchronously. */
export function destroyNow(id: string): void {
  const vm = withStore((store) => store.findVm(id));
  if (vm !== undefined) killHard(vm);
  rmSync(vmFiles(id).dir, { recursive: true, force: true });
  withStore((store) => store.deleteVm(id));
}

function killHard(vm: VmRecord): void {
  for (const pid of [vm.vmmPid, vm.supervisorPid]) {
    if (pidAlive(pid)) {
      try {
        process.kill(pid!, "SIGKILL");
      } catch {
        // Gone between the check and the kill.
      }
    }
  }
}

/** The record of a sandbox that must be running for `what`. */
export function requireRunning(idOrName: string, what: string): VmRecord {
  const vm = withStore((store) => reconcile(store, store.getVm(idOrName)));
  if (vm.status !== "running" && vm.status !== "paused") {
    throw new NotRunningError(`Cannot ${what} sandbox "${vm.name}": it is ${vm.status}`, {
      hint: vm.status === "stopped" || vm.status === "failed" ? `start it with \`smolvm start ${vm.name}\`` : "wait for it to finish",
      details: vm.lastError === null ? undefined : { lastError: vm.lastError },
    });
  }
  return vm;
}
