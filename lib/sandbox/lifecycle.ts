/**
 * Creating, starting, stopping and deleting sandboxes, from the caller's side. Everything here
 * keeps one promise: a failure leaves nothing behind (no process, socket, overlay or state row)
 * and says why. Readiness and the end of a stop are learned from the supervisor's socket (its
 * HELLO, its hang-up), never by polling the store.
 */
import { existsSync, mkdirSync, rmSync } from "node:fs";
import type { AgentClient } from "../agent/client.ts";
import type { AccelInfo } from "../backends/accel.ts";
import { chooseBackend, precheckBackend, resolveJailer } from "../backends/select.ts";
import type { BackendName } from "../backends/types.ts";
import { parseSandboxConfig, type AccelChoice, type BackendChoice, type SandboxConfig, type SandboxConfigInput } from "../config.ts";
import { diskFullError, freeBytes, InvalidInputError, SmolError, smolError, toSmolError } from "../errors.ts";
import { hostGuestArch } from "../kernel/arch.ts";
import { pidAlive } from "../host/pids.ts";
import { logEvent } from "../log.ts";
import { paths } from "../paths.ts";
import { persistedChannel } from "../channels/policy.ts";
import { generateId } from "../state/allocate.ts";
import { withStore } from "../state/sandboxes.ts";
import type { SandboxRecord } from "../state/record.ts";
import { within } from "../util/poll.ts";
import { tailOf } from "../util/tail.ts";
import { prepareArtifacts, type Artifacts, type PrepareProgress } from "./artifacts.ts";
import { sshEndpointWhenReady } from "./connection.ts";
import { launchVmm, restoreVmm, writeRestoreMarker } from "./launch.ts";
import { sandboxFiles } from "./layout.ts";
import { assertMay, isLive, readSandbox } from "./status.ts";
import { spawnSupervisor } from "./spawn.ts";
import { connectSupervisor } from "./supervisor-client.ts";
import { removeLauncher, writeLauncher, type LaunchPurpose } from "./launcher.ts";
import { killSandboxProcesses, sandboxProcesses, stillOurs } from "./processes.ts";
import { liveTicket, removeTicket } from "./ticket.ts";
import { checkNetwork, chooseNetwork, parsePolicy, policyLists, reclaimNetwork } from "../network/index.ts";

export interface CreateProgressOptions {
  onProgress?: (progress: PrepareProgress) => void;
  /** The kernel and image, when the caller resolved them already. */
  artifacts?: Artifacts;
  /** Runs once the sandbox answers, before its env is set (a warm template is taken here). */
  afterBoot?: (booted: Booted) => Promise<void>;
}

/** A sandbox that just became ready, and the session its readiness was learned on. */
export interface Booted {
  record: SandboxRecord;
  /** The supervisor's session: HELLO answered, so the agent is there. The caller owns it. */
  session: AgentClient;
  /** The accelerator its VM runs with, and why. */
  accel: AccelInfo;
  /** What the caller should be told about how the sandbox was made (on macOS: that it has no network). */
  notices: string[];
  /** The backend chosen for it, and why (a create only). */
  backend?: BackendInfo;
}

/** Which backend runs a sandbox, and why; `fellBack` when the default passed over Firecracker. */
export interface BackendInfo {
  name: BackendName;
  reason: string;
  fellBack: boolean;
}

/** Creates a sandbox and returns once its agent answers (and its managed env is set). */
export async function createSandbox(input: SandboxConfigInput = {}, options: CreateProgressOptions = {}): Promise<Booted> {
  return createNew({ ...options, ...(await resolveCreate(input, options)) });
}

/** A create's configuration, resolved: its network and backend chosen and checked on this host, its kernel and image prepared. */
export interface ResolvedCreate {
  config: SandboxConfig;
  backend: BackendInfo;
  /** What the caller is to be told about it (Booted.notices). */
  notices: string[];
}

export async function resolveCreate(input: SandboxConfigInput, options: Pick<CreateProgressOptions, "onProgress" | "artifacts"> = {}): Promise<ResolvedCreate> {
  const requested = parseSandboxConfig(input);
  // The network this platform gives, its policy and what the host can do: refused before anything
  // is made. Left to the default on Linux, the network is the chosen backend's to pick (QEMU's
  // default is user mode, which Firecracker does not have).
  const platformNetwork = chooseNetwork(input.network);
  const asked = input.network ?? (platformNetwork.notice === undefined ? undefined : platformNetwork.mode);
  const policy = policyLists(parsePolicy(requested));
  const jailer = resolveJailer(requested.jailer);
  const backendRequest = { choice: requested.backend, network: asked, jailer, diskMode: requested.diskMode };
  checkNetwork(precheckBackend(backendRequest).network);
  const artifacts = options.artifacts ?? await prepareArtifacts(requested, options.onProgress);
  const chosen = await chooseBackend({ ...backendRequest, arch: hostGuestArch(), kernelPath: artifacts.kernelPath });
  const config: SandboxConfig = { ...requested, ...policy, network: chosen.network, jailer, kernelPath: artifacts.kernelPath, rootfsPath: artifacts.rootfsPath };
  return {
    config,
    backend: { name: chosen.name, reason: chosen.reason, fellBack: chosen.fellBack },
    notices: [
      ...(platformNetwork.notice === undefined ? [] : [platformNetwork.notice]),
      ...(chosen.fellBack ? [`running on QEMU rather than Firecracker: ${chosen.reason}`] : []),
    ],
  };
}

/** Where a restored sandbox comes from: a snapshot's directory (its state) and its disk layer. */
export interface RestoreSource {
  dir: string;
  layer: string;
  /** The layer's size: the new sandbox's disk starts as a copy of it. */
  layerBytes: number;
}

export interface NewSandboxOptions extends CreateProgressOptions, ResolvedCreate {
  /** Restore it from a snapshot rather than boot it. */
  restore?: RestoreSource;
}

/**
 * Makes a sandbox of a resolved configuration, booted or restored, and returns once its agent
 * answers (and its managed env is set); a failure leaves nothing of it.
 */
export async function createNew(options: NewSandboxOptions): Promise<Booted> {
  const { config, backend, restore } = options;
  const mode = config.network;
  // The directory and its launcher record come first: a create killed at any point after this
  // leaves something `cleanup` recognises as an abandoned create (launcher.ts).
  const id = generateId();
  const files = sandboxFiles(id);
  requireRoom(paths.sandboxesDir(), CREATE_ROOM_BYTES + (restore?.layerBytes ?? 0), `Cannot create sandbox${config.name === undefined ? "" : ` "${config.name}"`}`);
  let vm: SandboxRecord;
  try {
    mkdirSync(files.dir, { recursive: true, mode: 0o700 });
    writeLauncher(files, "create");
    vm = withStore((store) => {
      const created = store.create({
        id,
        config,
        backend: backend.name,
        // TAP: SSH reaches the guest's own address; none: the supervisor carries the SSH port
        // through the agent. Firecracker's vsock device needs a context id.
        allocate: { sshPort: mode !== "tap", ip: mode === "tap", dnsPort: mode !== "none", cid: backend.name === "firecracker" },
      });
      const channel = persistedChannel(config.channel);
      return channel === null ? created : store.update(created.id, { channel });
    });
  } catch (error) {
    rmSync(files.dir, { recursive: true, force: true });
    throw error;
  }
  try {
    options.onProgress?.({ phase: "boot", message: `booting ${vm.name}` });
    const booted = await bootSandbox(vm, "create", restore);
    booted.notices.push(...options.notices);
    await options.afterBoot?.(booted);
    // Before create returns, so the first command of anyone sees them.
    if (Object.keys(config.env).length > 0) await booted.session.env.set(config.env);
    // The sandbox is the caller's now: from here a dying caller leaves it be.
    removeLauncher(files);
    return { ...booted, backend };
  } catch (error) {
    await destroyNow(vm.id).catch((cleanupError: unknown) => logEvent("error", `cannot remove the sandbox of a failed create: ${(cleanupError as Error).message}`, { sandbox: vm.id }));
    throw error;
  }
}

/**
 * What a new sandbox needs free on the host before it starts: its disk's metadata, its logs and
 * records, and room for its first writes. Less, and the create stops before making anything.
 */
const CREATE_ROOM_BYTES = 16 * 1024 * 1024;

/** HOST_DISK_FULL, before anything is made, when the file system holding `dir` has less than `bytes` free. */
function requireRoom(dir: string, bytes: number, action: string): void {
  const free = freeBytes(dir);
  if (free !== undefined && free < bytes) throw diskFullError(dir, { action, neededBytes: bytes });
}

export interface StartOptions {
  /** The accelerator for this boot only; default the sandbox's own choice. */
  accel?: AccelChoice;
  /**
   * The backend the caller expects; a sandbox keeps the one it was created on (its disk is in
   * that backend's format), so another one is refused. Default `auto`: the sandbox's own.
   */
  backend?: BackendChoice;
}

/** Boots a stopped (or failed) sandbox again; a running one is left as it is. */
export async function startSandbox(idOrName: string, options: StartOptions = {}): Promise<Booted | { record: SandboxRecord }> {
  const vm = readSandbox(idOrName);
  const recorded = vm.backend ?? "qemu";
  if (options.backend !== undefined && options.backend !== "auto" && options.backend !== recorded) {
    throw new InvalidInputError(`Cannot start sandbox "${vm.name}" on the ${options.backend} backend: it was created on ${recorded}, and its disk is in ${recorded}'s format`, {
      hint: `start it without --backend (it runs on ${recorded}), or create a new sandbox with --backend ${options.backend}`,
    });
  }
  if (isLive(vm.status)) return { record: vm };
  assertMay(vm, { kind: "boot", what: "start" });
  checkNetwork(vm.config.network);
  const files = sandboxFiles(vm.id);
  mkdirSync(files.dir, { recursive: true, mode: 0o700 });
  writeLauncher(files, "start");
  try {
    return await bootSandbox(options.accel === undefined ? vm : { ...vm, config: { ...vm.config, accel: options.accel } }, "start");
  } finally {
    removeLauncher(files);
  }
}

/**
 * Boots `vm` (or, with `restore`, restores it from a snapshot) and resolves once its supervisor
 * answered. The caller removes the sandbox when this fails.
 */
async function bootSandbox(vm: SandboxRecord, purpose: LaunchPurpose, restore?: RestoreSource): Promise<Booted> {
  const files = sandboxFiles(vm.id);
  let supervisorStarted: Promise<number> | undefined;
  if (liveTicket(files) === undefined) {
    // A fresh boot starts without forwards; a list left by a crashed run is not this VM's.
    rmSync(files.forwards, { force: true });
    if (restore === undefined) rmSync(files.restoreMarker, { force: true });
    if (purpose === "start") withStore((store) => store.update(vm.id, { status: "creating", lastError: null }));
    try {
      if (restore === undefined) {
        // Launched here and handed to the supervisor with its ticket: the guest boots while the
        // supervisor process starts, which takes a few hundred milliseconds of its own.
        await (await launchVmm(vm, files)).release();
      } else {
        // A restore takes about as long as a supervisor's start: both at once. The marker first
        // (the supervisor waits for the ticket, never boots a VM of its own), the supervisor at
        // once after it, so a creator killed from here on leaves one that undoes the create; if
        // this fails, the caller's removal of the sandbox ends it with the rest.
        writeRestoreMarker(files, restore);
        supervisorStarted = spawnSupervisor(vm.id);
        supervisorStarted.catch(() => {});
        await (await restoreVmm(vm, files, restore)).release();
      }
    } catch (thrown) {
      throw launchFailure(vm, thrown);
    }
  }
  let session: AgentClient;
  try {
    await (supervisorStarted ?? spawnSupervisor(vm.id));
    // The supervisor enforces the boot timeout itself; the margin covers one that hangs.
    session = await connectSupervisor(vm, { timeoutMs: vm.config.bootTimeoutMs + 10_000, respawn: false });
  } catch (thrown) {
    throw bootFailure(vm, thrown);
  }
  const record = withStore((store) => store.get(vm.id));
  try {
    // A sandbox that is to be used over SSH is ready when its sshd is.
    if (record.channel === "ssh") await sshEndpointWhenReady(record, record.config.bootTimeoutMs);
  } catch (error) {
    await session.close();
    throw error;
  }
  const supervisor = session.hello.supervisor!;
  return { record, session, accel: { accel: supervisor.accel, reason: supervisor.accelReason }, notices: [] };
}

function launchFailure(vm: SandboxRecord, thrown: unknown): SmolError {
  const error = toSmolError(thrown);
  withStore((store) => store.update(vm.id, { status: "failed", lastError: { code: error.code, message: error.message }, vmmPid: null }));
  // The VMM's log lives in the sandbox's directory, which a failed create removes: its whole
  // output goes to smolvm's own log first.
  logEvent("error", `sandbox "${vm.name}" failed to boot`, { sandbox: vm.id, error: error.message, ...(error.details ?? {}) });
  return smolError(error.code, `Sandbox "${vm.name}" failed to boot: ${error.message}`, {
    // Not the VMM's own hint: it names files in the sandbox's directory, which a failed create
    // removes. The network's own (what to remove or install) stands.
    hint: error.details?.stage === "network" && error.hint !== undefined ? error.hint : `the VMM's full output is in ${paths.logFile()}; check the kernel and image it boots (\`smolvm kernel list\`, \`smolvm image list\`, or your --kernel/--rootfs) and the host (\`smolvm doctor\`)`,
    cause: thrown,
  });
}

/** The supervisor's refusal (or its death) as the failure of this boot. */
function bootFailure(vm: SandboxRecord, thrown: unknown): SmolError {
  const error = toSmolError(thrown);
  const refused = error.code !== "AGENT_UNAVAILABLE";
  const why = refused ? error.message : `its supervisor exited during boot (${error.message})`;
  const tail = refused ? "" : tailOf(sandboxFiles(vm.id).supervisorLog, 5);
  return smolError(refused ? error.code : "BACKEND_UNAVAILABLE", `Sandbox "${vm.name}" failed to boot: ${why}${tail ? `\n${tail}` : ""}`, {
    hint: refused && error.hint !== undefined ? error.hint : "run with SMOLVM_VERBOSE_BOOT=1 to keep the kernel's boot messages in the console log; `smolvm doctor` checks the host",
    cause: thrown,
  });
}

/**
 * Stops a sandbox: the agent syncs and powers the guest off, the supervisor records it and hangs
 * up, which is when this returns. The disk (overlay) is kept for `start`. A supervisor that died
 * is replaced first when its VM still runs (the guest deserves its clean shutdown); one that does
 * not answer, or a guest that ignores the shutdown, is ended from here. What the supervisor
 * refuses (a guest frozen on a full host disk, whose last writes would be lost) is said, not
 * forced.
 */
export async function stopSandbox(idOrName: string, options: { timeoutMs?: number } = {}): Promise<SandboxRecord> {
  const vm = readSandbox(idOrName);
  if (vm.status === "stopped" || vm.status === "failed") return vm;
  const timeoutMs = options.timeoutMs ?? 15_000;
  // A live supervisor is asked; a VM without one gets a new one (its ticket says how to attach).
  const supervised = stillOurs(vm.id, vm.supervisorPid) || sandboxProcesses(vm.id).some((p) => p.role === "supervisor");
  let recorded = false;
  if (supervised || liveTicket(sandboxFiles(vm.id)) !== undefined) {
    let session: AgentClient | undefined;
    try {
      session = await connectSupervisor(vm, { timeoutMs: 5_000 });
    } catch {
      // A supervisor that is gone, hung, or cannot be started: ended from here instead.
    }
    if (session !== undefined) {
      try {
        await session.supervisor("supervisor.stop", {}, { timeoutMs });
        recorded = (await within(session.closed, timeoutMs)) !== undefined;
      } catch (error) {
        // The supervisor's own refusal stands (a guest frozen on a full disk); one that went
        // quiet is ended below.
        if (error instanceof SmolError && !["TIMEOUT", "AGENT_UNAVAILABLE", "NOT_RUNNING"].includes(error.code)) {
          await session.close();
          throw error;
        }
      }
      await session.close();
    }
  }
  // A guest that ignored the shutdown, or a supervisor that died or hung: end them.
  if (!recorded) {
    await killSandboxProcesses(vm.id, [vm.vmmPid, vm.supervisorPid]);
    // Its supervisor would have removed the network; ended from here, so is its network.
    await reclaimNetwork({ id: vm.id, dir: sandboxFiles(vm.id).dir, mode: vm.config.network });
  }
  removeTicket(sandboxFiles(vm.id));
  return withStore((store) => {
    const now = store.find(vm.id);
    if (now === undefined) return { ...vm, status: "stopped", supervisorPid: null, vmmPid: null };
    return now.status === "stopped" ? now : store.update(vm.id, { status: "stopped", supervisorPid: null, vmmPid: null });
  });
}

export interface DeleteOptions {
  /**
   * Return only once every process, file and the row of the sandbox are gone (checked), instead
   * of once its VM is killed and its name free (the supervisor removes the files behind).
   */
  force?: boolean;
}

/**
 * Deletes a sandbox, whatever state its row is in. Returns at once, with the name free: the
 * supervisor kills the VM and removes the row before it answers, then removes the files behind
 * the caller; with `force`, returns once all of it is gone, or fails naming what is left.
 */
export async function deleteSandbox(idOrName: string, options: DeleteOptions = {}): Promise<SandboxRecord> {
  const vm = withStore((store) => store.get(idOrName));
  try {
    withStore((store) => store.update(vm.id, { status: "deleting" }));
  } catch (error) {
    // On a full disk the mark may not fit; the delete itself frees room, so it goes on.
    if (!(error instanceof SmolError) || error.code !== "HOST_DISK_FULL") throw error;
  }
  if (pidAlive(vm.supervisorPid)) {
    try {
      const session = await connectSupervisor(vm, { timeoutMs: 2_000, respawn: false });
      await session.supervisor("supervisor.destroy", {}, { timeoutMs: 2_000 });
      // The supervisor hangs up once the VM has exited and the files are gone.
      if (options.force === true) await within(session.closed, 10_000);
      await session.close();
      if (options.force !== true) return vm;
    } catch {
      // An unresponsive supervisor: clean up from here.
    }
  }
  await destroyNow(vm.id);
  return vm;
}

/**
 * Ends every process of the sandbox (found, not only recorded), removes its network (namespace,
 * TAP interface, rules), its directory and its row; resolves once all of it is gone, or rejects
 * naming what is left. The row goes last, so its allocations (address, ports) are never handed
 * out while something still holds them.
 */
export async function destroyNow(id: string): Promise<void> {
  const vm = withStore((store) => store.find(id));
  await killSandboxProcesses(id, vm === undefined ? [] : [vm.vmmPid, vm.supervisorPid]);
  const dir = sandboxFiles(id).dir;
  await reclaimNetwork({ id, dir, ...(vm === undefined ? {} : { mode: vm.config.network }) });
  rmSync(dir, { recursive: true, force: true });
  if (existsSync(dir)) throw new SmolError("IO_ERROR", `Cannot remove sandbox ${id}: its directory "${dir}" is still there`, { hint: `remove it by hand: rm -rf "${dir}"` });
  withStore((store) => store.delete(id));
}
