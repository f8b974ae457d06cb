/**
 * Reaching a sandbox's supervisor from any process (spawn.ts starts one).
 *
 * Connecting is the readiness signal: the supervisor answers the HELLO once the sandbox is ready,
 * and with an ERROR carrying the code and reason when its boot failed. If the supervisor died
 * but the VM still runs, a new one is started and re-attaches, so the caller never notices.
 */
import { connect, type Socket } from "node:net";
import { AgentClient } from "../agent/client.ts";
import { AgentUnavailableError, NotRunningError } from "../errors.ts";
import { pidAlive } from "../host/pids.ts";
import { sandboxFiles } from "./layout.ts";
import { readSandbox, refusal } from "./status.ts";
import { liveTicket } from "./ticket.ts";

function openSocket(path: string): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const socket = connect(path);
    socket.once("connect", () => {
      socket.removeListener("error", reject);
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
}

/**
 * An agent-protocol session with the sandbox's supervisor, once it said HELLO (the sandbox is
 * ready). Rejects with the supervisor's refusal (the boot failed, it is stopping), or with
 * NotRunningError when nothing runs the sandbox.
 */
export async function connectSupervisor(vm: { id: string; name: string }, options: SupervisorConnectOptions): Promise<AgentClient> {
  const files = sandboxFiles(vm.id);
  // HELLO goes out with the connection rather than after its `connect` event: one wake-up less
  // on every command. A socket that never connected says why in `refused`.
  const socket = connect(files.supervisorSocket);
  let connected = false;
  let refused: NodeJS.ErrnoException | undefined;
  socket.once("connect", () => (connected = true));
  socket.once("error", (error) => {
    if (!connected) refused = error;
  });
  try {
    return await AgentClient.connect(socket, { timeoutMs: options.timeoutMs });
  } catch (error) {
    if (connected || (refused?.code !== "ENOENT" && refused?.code !== "ECONNREFUSED")) throw refused ?? error;
    return AgentClient.connect(await reattach(vm, refused, options.respawn ?? true), { timeoutMs: options.timeoutMs });
  }
}

/** The supervisor is gone: say why nothing can be reached, or start a new one for a VM that still runs. */
async function reattach(vm: { id: string; name: string }, cause: unknown, respawn: boolean): Promise<Socket> {
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
