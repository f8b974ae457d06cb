/**
 * The per-sandbox supervisor (`smolvm __supervise ID`, started detached by create/start).
 *
 * It owns the VMM, the agent connection and the socket SDK clients use. It boots the VM (or
 * re-attaches to one a dead supervisor left running), records readiness or the reason for a
 * failed boot in the state store, relays client streams to the agent, and records the VMM's
 * end. `supervisor.stop` powers the guest off; `supervisor.destroy` kills it and removes every
 * trace of the sandbox, after answering, so delete returns at once.
 */
import { existsSync, rmSync } from "node:fs";
import { open } from "node:fs/promises";
import { createServer, connect, type Server, type Socket } from "node:net";
import { setTimeout as sleep } from "node:timers/promises";
import { AlreadyExistsError, NotFoundError, smolError, type SmolError, toSmolError } from "../errors.ts";
import { logEvent } from "../log.ts";
import { StateStore, type VmPatch, type VmRecord } from "../state/vms.ts";
import { tailOf } from "../util/tail.ts";
import { connectAgent, type AgentLink } from "./agent-link.ts";
import { PortForwards } from "./forwards.ts";
import { FrameType, jsonFrame, jsonPayload, sendJson, type Frame } from "./frames.ts";
import { vmFiles, type VmFiles } from "./layout.ts";
import { Relay, type StreamOwner } from "./relay.ts";
import { ClientSession, type SupervisorOp } from "./session.ts";
import { attachVmm, launchVmm, vmmRunning, writableDiskOf, type Vmm } from "./vmm.ts";

/**
 * The supervisor's one connection to the state store, kept for its lifetime: opening and closing
 * one per update costs ~3 ms, and the update that records a stop is on the caller's clock.
 */
let ownStore: StateStore | undefined;
function store(): StateStore {
  return (ownStore ??= StateStore.open());
}

/** Updates the sandbox's row unless it is gone already (deleted while we worked). */
function update(id: string, patch: VmPatch): VmRecord | undefined {
  return store().findVm(id) === undefined ? undefined : store().updateVm(id, patch);
}

export async function runSupervisor(id: string): Promise<void> {
  try {
    await supervise(id);
  } finally {
    ownStore?.close();
    ownStore = undefined;
  }
}

async function supervise(id: string): Promise<void> {
  const vm = store().findVm(id);
  if (vm === undefined) throw new NotFoundError(`supervisor: no sandbox ${id}`);
  const files = vmFiles(id);
  const server = await listenExclusive(files.supervisorSocket);
  // Clients may connect while the VM boots (a re-attach, or a create's first command): hold
  // them until the agent is there, then serve them like everyone else.
  const early: Socket[] = [];
  let accept: ((socket: Socket) => void) | undefined;
  server.on("connection", (socket) => (accept ? accept(socket) : early.push(socket)));
  const deadline = Date.now() + vm.config.bootTimeoutMs;
  let vmm: Vmm | undefined;
  let ending: "stop" | "destroy" | undefined;
  let closeClients = () => {};
  const stopped = new AbortController();

  try {
    vmm = await startOrAttach(vm, files);
    update(id, { vmmPid: vmm.pid, supervisorPid: process.pid });
    void vmm.exited.then(() => stopped.abort());
    // A VM paused when its old supervisor died is thawed just long enough to greet its agent.
    const wasPaused = vmm.pid === vm.vmmPid && (await vmm.control.status()).state === "paused";
    if (wasPaused) await vmm.control.resume();
    const link = await connectAgent(files.agentSocket, deadline, stopped.signal).catch((error: unknown) => {
      throw bootError(vm, files, error, stopped.signal.aborted);
    });
    if (wasPaused) await vmm.control.pause();
    update(id, { status: wasPaused ? "paused" : "running", lastError: null });
    logEvent("info", "sandbox ready", { vm: id, bootTimeMs: link.hello.bootTimeMs });
    closeClients = await serve(vm, vmm, link, (how) => (ending = how), (handler) => {
      accept = handler;
      for (const socket of early.splice(0)) handler(socket);
    }, wasPaused);
  } catch (thrown) {
    const error = toSmolError(thrown);
    logEvent("error", `supervisor: ${error.message}`, { vm: id, stack: thrown instanceof Error ? thrown.stack : undefined });
    vmm?.kill();
    if (vmm !== undefined) await vmm.exited;
    update(id, { status: "failed", lastError: `${error.code}: ${error.message}`, vmmPid: null, supervisorPid: null });
    for (const socket of early) {
      sendJson(socket, FrameType.ERROR, 0, { code: error.code, message: error.message });
      socket.end();
    }
    server.close();
    rmSync(files.supervisorSocket, { force: true });
    return;
  }

  // The VMM is gone: say how in the state store.
  server.close();
  rmSync(files.supervisorSocket, { force: true });
  for (const socket of [files.agentSocket, files.controlSocket]) rmSync(socket, { force: true });
  if (ending === "destroy") {
    rmSync(files.dir, { recursive: true, force: true });
    store().deleteVm(id);
    closeClients();
    return;
  }
  if (ending === "stop") {
    update(id, { status: "stopped", vmmPid: null, supervisorPid: null });
  } else {
    const tail = tailOf(files.consoleLog, 5);
    update(id, {
      status: "failed",
      vmmPid: null,
      supervisorPid: null,
      lastError: `the VM exited unexpectedly${tail ? `; last console lines:\n${tail}` : ""}`,
    });
  }
  // Clients still connected learn the end by the hang-up, and only now, with the row written: a
  // stop's caller waits for exactly that instead of polling the store.
  closeClients();
  // QEMU runs its disk with cache=unsafe (no host fsync per guest flush): make what the VM wrote
  // durable now, after the caller has its answer.
  await fsyncQuietly(writableDiskOf(vm, files));
}

async function fsyncQuietly(path: string): Promise<void> {
  try {
    const handle = await open(path, "r+");
    try {
      await handle.sync();
    } finally {
      await handle.close();
    }
  } catch (error) {
    // A disk deleted meanwhile has nothing left to keep.
    if ((error as NodeJS.ErrnoException).code !== "ENOENT") logEvent("warn", `supervisor: cannot fsync the disk ${path}: ${(error as Error).message}`);
  }
}

async function startOrAttach(vm: VmRecord, files: VmFiles): Promise<Vmm> {
  // create and start launch the VMM before they start the supervisor; a supervisor that died
  // also leaves one running. Launching here only happens for a supervisor started on its own.
  return vmmRunning(vm, files) ? attachVmm(vm, files) : launchVmm(vm, files);
}

function bootError(vm: VmRecord, files: VmFiles, error: unknown, vmmExited: boolean): SmolError {
  const console = tailOf(files.consoleLog, 8);
  const vmmLog = tailOf(files.vmmLog, 3);
  const seconds = Math.round(vm.config.bootTimeoutMs / 1000);
  const why = vmmExited
    ? `the VM exited during boot${vmmLog ? ` (${vmmLog.replaceAll("\n", " | ")})` : ""}`
    : `the guest agent did not answer within ${seconds} s`;
  return smolError(vmmExited ? "BACKEND_UNAVAILABLE" : "TIMEOUT", `${why}${console ? `; last console lines:\n${console}` : "; the console printed nothing"}`, {
    cause: error,
  });
}

async function serve(
  vm: VmRecord,
  vmm: Vmm,
  link: AgentLink,
  setEnding: (how: "stop" | "destroy") => void,
  onConnection: (handler: (socket: Socket) => void) => void,
  initiallyPaused = false,
): Promise<() => void> {
  const relay = new Relay(link.socket);
  void provisionSshWhenQuiet(vm, vmm.pid, relay);
  const sessions = new Set<Socket>();
  const files = vmFiles(vm.id);
  const forwards = new PortForwards(files.supervisorSocket, files.forwards, vm);
  let agentGone = false;
  let paused = initiallyPaused;
  link.onFrame((frame) => relay.fromAgent(frame), (error) => {
    logEvent("error", `supervisor: agent sent a malformed frame: ${error.message}`, { vm: vm.id });
    link.socket.destroy();
  });
  link.socket.on("error", () => {});
  link.socket.on("close", () => {
    agentGone = true;
    relay.failAll("AGENT_UNAVAILABLE", "the guest agent connection closed");
  });

  const ops: Record<string, SupervisorOp> = {
    "supervisor.status": async () => ({ id: vm.id, supervisorPid: process.pid, vmmPid: vmm.pid, agentConnected: !agentGone, vmm: await vmm.control.status() }),
    "supervisor.stop": async () => {
      setEnding("stop");
      forwards.closeAll();
      // A paused guest cannot hear the shutdown request.
      if (paused) await vmm.control.resume().catch(() => {});
      void shutdown(vmm, relay);
      return {};
    },
    "supervisor.destroy": async () => {
      setEnding("destroy");
      forwards.closeAll();
      vmm.kill();
      return {};
    },
    "supervisor.pause": async () => {
      await vmm.control.pause();
      paused = true;
      update(vm.id, { status: "paused" });
      return {};
    },
    "supervisor.resume": async () => {
      await vmm.control.resume();
      paused = false;
      update(vm.id, { status: "running" });
      return {};
    },
    "supervisor.expose": async (request) => forwards.expose(request),
    "supervisor.close": async (request) => forwards.close(request.hostPort),
    "supervisor.ports": async () => ({ ports: forwards.list() }),
  };

  onConnection((socket) => {
    sessions.add(socket);
    new ClientSession(socket, { relay, hello: link.hello, supervisorInfo: { pid: process.pid, vm: vm.id }, ops }, () => sessions.delete(socket));
  });
  // Forwards an earlier supervisor of this VM left open (only a crash leaves any).
  await forwards.restore();

  await vmm.exited;
  forwards.closeAll();
  link.socket.destroy();
  return () => {
    for (const socket of sessions) socket.destroy();
  };
}

/**
 * Asks the agent to power off. It answers once every guest process is gone and `/` is synced
 * and read-only; from then on nothing in the guest is left to save, so the VMM is told to quit
 * at once rather than left to watch the emulated kernel's reboot path (~50-100 ms under TCG).
 * An agent that does not say `synced` (an image built before this) is left to power off by
 * itself: the VMM ends on its own with -no-reboot.
 */
async function shutdown(vmm: Vmm, relay: Relay): Promise<void> {
  const synced = new Promise<boolean>((resolve) => {
    const owner: StreamOwner = {
      deliver: (frame) => resolve(frame.type === FrameType.RESULT && isSynced(frame)),
      fail: () => resolve(false),
    };
    relay.open(owner, jsonFrame(FrameType.OPEN, 1, { op: "shutdown", answer: "synced" }));
  });
  const answered = await Promise.race([synced, vmm.exited.then(() => false), sleep(10_000).then(() => false)]);
  if (answered) await vmm.control.quit().catch(() => vmm.kill());
  const exited = await Promise.race([vmm.exited.then(() => true), sleep(answered ? 3_000 : 10_000).then(() => false)]);
  if (!exited) {
    await vmm.control.quit().catch(() => vmm.kill());
    const quit = await Promise.race([vmm.exited.then(() => true), sleep(3_000).then(() => false)]);
    if (!quit) vmm.kill();
  }
}

function isSynced(frame: Frame): boolean {
  try {
    return (jsonPayload(frame) as { synced?: unknown }).synced === true;
  } catch {
    return false;
  }
}

const SSH_QUIET_MS = 300;
const SSH_MAX_DEFER_MS = 5_000;

/**
 * SSH keys and sshd, in the background: never on the readiness path, and not while a caller's
 * first commands run. On one emulated vCPU the set-up's own execs made a caller's first command
 * ~50 % slower (190-220 ms against 120-145 ms), so it waits until no stream has been open for
 * 300 ms (at most 5 s). A sandbox whose channel is SSH needs it at once.
 */
async function provisionSshWhenQuiet(vm: VmRecord, vmmPid: number, relay: Relay): Promise<void> {
  const { provisionSsh } = await import("./ssh-setup.ts");
  if (vm.channel !== "ssh") {
    const started = Date.now();
    while (relay.idleMs() < SSH_QUIET_MS && Date.now() - started < SSH_MAX_DEFER_MS) await sleep(50);
  }
  await provisionSsh(vm, vmmPid, async () => (await import("./client.ts")).connectSupervisor(vm.id));
}

/** Listens on the supervisor socket, refusing to run beside a live supervisor of the same VM. */
async function listenExclusive(path: string): Promise<Server> {
  if (existsSync(path)) {
    const alive = await new Promise<boolean>((resolve) => {
      const probe = connect(path);
      probe.once("connect", () => {
        probe.destroy();
        resolve(true);
      });
      probe.once("error", () => resolve(false));
    });
    if (alive) throw new AlreadyExistsError("another supervisor is serving this sandbox");
    rmSync(path, { force: true });
  }
  const server = createServer();
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(path, () => resolve());
  });
  return server;
}
