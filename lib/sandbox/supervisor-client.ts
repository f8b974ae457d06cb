/**
 * Reaching a sandbox's supervisor from any process (spawn.ts starts one).
 *
 * Connecting is the readiness signal: the supervisor answers the HELLO once the sandbox is ready,
 * and with an ERROR carrying the code and reason when its boot failed. If the supervisor died
 * but the VM still runs, a new one is started and re-attaches, so the caller never notices.
 */
import { AgentClient } from "../agent/client.ts";
import type { ByteStream } from "../agent/types.ts";
import { connectUnix } from "../host/unix-socket.ts";
import { AgentUnavailableError, NotRunningError } from "../errors.ts";
import { pidAlive, processStat } from "../host/pids.ts";
import { sandboxFiles } from "./layout.ts";
import { readSandbox, refusal } from "./status.ts";
import { liveTicket } from "./ticket.ts";
import { pollUntil } from "../util/poll.ts";

async function openSocket(path: string): Promise<ByteStream> {
  const socket = await connectUnix(path);
  return new Promise((resolve, reject) => {
    socket.once("connect", () => {
      socket.off("error", reject);
      resolve(socket);
    });
    socket.once("error", reject);
  });
}

export interface SupervisorConnectOptions {
  /** How long the HELLO may take: a booting sandbox answers once it is ready. */
  timeoutMs: number;
  /** Start a new supervisor when the old one is gone but the VM runs (default true). */
  respawn?: boolean;
  /**
   * Past `timeoutMs`, wait on up to this long for as long as the supervisor process runs: on a
   * loaded host its answer is late, not lost. A supervisor that is gone or stopped by a signal is
   * given up on at once.
   */
  patienceMs?: number;
  /** Operations to send behind the HELLO (AgentConnectOptions.first), again on a new supervisor's. */
  first?: (client: AgentClient) => void;
}

/**
 * An agent-protocol session with the sandbox's supervisor, once it said HELLO (the sandbox is
 * ready). Rejects with the supervisor's refusal (the boot failed, it is stopping), or with
 * NotRunningError when nothing runs the sandbox.
 */
export async function connectSupervisor(vm: { id: string; name: string; supervisorPid?: number | null }, options: SupervisorConnectOptions): Promise<AgentClient> {
  const files = sandboxFiles(vm.id);
  // HELLO goes out with the connection rather than after its `connect` event: one wake-up less
  // on every command. A socket that never connected says why in `refused`.
  const socket = await connectUnix(files.supervisorSocket);
  let connected = false;
  let refused: NodeJS.ErrnoException | undefined;
  socket.once("connect", () => (connected = true));
  socket.once("error", (error) => {
    if (!connected) refused = error;
  });
  const patience = patient(vm, options);
  try {
    return await AgentClient.connect(socket, {
      supervised: true,
      timeoutMs: patience?.timeoutMs ?? options.timeoutMs,
      ...(patience === undefined ? {} : { signal: patience.signal }),
      ...(options.first === undefined ? {} : { first: options.first }),
    });
  } catch (error) {
    // A supervisor killed a moment ago may still accept into its backlog and then drop the
    // connection unanswered, or reset it: once its process is gone, that is no supervisor.
    const unanswered = (connected && error instanceof AgentUnavailableError) || refused?.code === "ECONNRESET";
    const dying = unanswered && vm.supervisorPid != null && await goneWithin(vm.supervisorPid, 200);
    if (!dying && (connected || (refused?.code !== "ENOENT" && refused?.code !== "ECONNREFUSED"))) throw refused ?? error;
    return AgentClient.connect(await reattach(vm, refused ?? error, options.respawn ?? true), {
      supervised: true,
      timeoutMs: options.timeoutMs,
      ...(options.first === undefined ? {} : { first: options.first }),
    });
  } finally {
    patience?.stop();
  }
}

/**
 * The HELLO's wait stretched from `timeoutMs` to `patienceMs` while the supervisor's process is
 * seen running; aborted with the reason once it is gone or stopped.
 */
function patient(vm: { id: string; name: string; supervisorPid?: number | null }, options: SupervisorConnectOptions): { timeoutMs: number; signal: AbortSignal; stop(): void } | undefined {
  const pid = vm.supervisorPid;
  if (options.patienceMs === undefined || options.patienceMs <= options.timeoutMs || pid === null || pid === undefined) return undefined;
  const controller = new AbortController();
  let timer: ReturnType<typeof setInterval> | undefined;
  const start = setTimeout(() => {
    // Looked at, not announced: the supervisor is not this process's child.
    timer = setInterval(() => {
      const stat = processStat(pid);
      if (stat !== undefined && stat.state !== "Z" && stat.state !== "T" && stat.state !== "t") return;
      controller.abort(stat === undefined || stat.state === "Z"
        ? new AgentUnavailableError(`Cannot reach sandbox "${vm.name}": its supervisor (pid ${pid}) exited without answering`, { hint: `\`smolvm info ${vm.name}\` shows its state` })
        : new AgentUnavailableError(`Cannot reach sandbox "${vm.name}": its supervisor (pid ${pid}) is stopped by a signal`, { hint: `\`kill -CONT ${pid}\` lets it go on` }));
    }, 250);
  }, options.timeoutMs);
  return {
    timeoutMs: options.patienceMs,
    signal: controller.signal,
    stop: () => {
      clearTimeout(start);
      if (timer !== undefined) clearInterval(timer);
    },
  };
}

/** Whether process `pid` is gone (or a zombie) now or within `ms`: it was not this process's child. */
function goneWithin(pid: number, ms: number): Promise<boolean> {
  return pollUntil(() => !pidAlive(pid), { timeoutMs: ms, what: `pid ${pid} to end` }).then(() => true, () => false);
}

/** The supervisor is gone: say why nothing can be reached, or start a new one for a VM that still runs. */
async function reattach(vm: { id: string; name: string }, cause: unknown, respawn: boolean): Promise<ByteStream> {
  const record = readSandbox(vm.id);
  const refused = refusal(record, { kind: "control", what: "reach" });
  if (refused !== undefined) throw refused;
  if (pidAlive(record.supervisorPid)) {
    throw new AgentUnavailableError(`Cannot reach the supervisor of "${record.name}": ${(cause as Error).message}`, {
      hint: `\`smolvm stop ${record.name}\` then \`smolvm start ${record.name}\``,
      cause,
    });
  }
  const files = sandboxFiles(vm.id);
  if (!respawn || liveTicket(files) === undefined) {
    throw new NotRunningError(`Cannot reach sandbox "${record.name}": its supervisor is gone`, { hint: `start it with \`smolvm start ${record.name}\`` });
  }
  await (await import("./spawn.ts")).spawnSupervisor(vm.id);
  return openSocket(files.supervisorSocket);
}
