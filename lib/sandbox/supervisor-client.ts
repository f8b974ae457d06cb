/**
 * Reaching a sandbox's supervisor from any process: starting one (this executable re-run with a
 * hidden subcommand, detached so it outlives the caller and a Ctrl-C in its terminal), and
 * connecting to it.
 *
 * Connecting is the readiness signal: the supervisor answers the HELLO once the sandbox is ready,
 * and with an ERROR carrying the code and reason when its boot failed. If the supervisor died
 * but the VM still runs, a new one is started and re-attaches, so the caller never notices.
 */
import { spawn } from "node:child_process";
import { closeSync, mkdirSync, openSync } from "node:fs";
import { connect, type Socket } from "node:net";
import type { Readable } from "node:stream";
import { AgentClient } from "../agent/client.ts";
import { AgentUnavailableError, NotRunningError } from "../errors.ts";
import { pidAlive } from "../host/pids.ts";
import { selfCommand } from "../host/self.ts";
import { tailOf } from "../util/tail.ts";
import { sandboxFiles } from "./layout.ts";
import { readSandbox, refusal } from "./status.ts";
import { liveTicket } from "./ticket.ts";

export const SUPERVISE_COMMAND = "__supervise";
/** Must match lib/supervisor/main.ts (the supervisor reads it; this side must not load that module). */
const READY_FD_ENV = "SMOLVM_SUPERVISOR_READY_FD";
const READY_FD = 3;

/**
 * Starts the supervisor of sandbox `id` and resolves with its pid once it listens on its socket
 * (it says so on a pipe, so nobody polls for the socket to appear).
 */
export function spawnSupervisor(id: string): Promise<number> {
  const files = sandboxFiles(id);
  mkdirSync(files.dir, { recursive: true, mode: 0o700 });
  const log = openSync(files.supervisorLog, "a");
  let child;
  try {
    const { file, args } = selfCommand([SUPERVISE_COMMAND, id]);
    child = spawn(file, args, {
      detached: true,
      stdio: ["ignore", log, log, "pipe"],
      env: { ...process.env, SMOLVM_SUPERVISOR: "1", [READY_FD_ENV]: String(READY_FD) },
    });
  } finally {
    closeSync(log);
  }
  child.unref();
  const pipe = child.stdio[READY_FD] as Readable;
  return new Promise((resolve, reject) => {
    let said = "";
    const done = (error?: Error) => {
      pipe.destroy();
      if (error) reject(error);
      else resolve(child.pid!);
    };
    child.once("error", (error) => done(new AgentUnavailableError(`Cannot start the supervisor of sandbox ${id}: ${error.message}`, { cause: error })));
    pipe.on("data", (chunk: Buffer) => {
      said += chunk.toString("utf8");
      if (said.includes("listening\n")) done();
    });
    pipe.once("close", () => {
      const tail = tailOf(files.supervisorLog, 5);
      done(new AgentUnavailableError(`The supervisor of sandbox ${id} exited before it served${tail ? `:\n${tail}` : ""}`, {
        hint: `see ${files.supervisorLog}`,
      }));
    });
  });
}

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
  let socket: Socket;
  try {
    socket = await openSocket(files.supervisorSocket);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code !== "ENOENT" && code !== "ECONNREFUSED") throw error;
    socket = await reattach(vm, error, options.respawn ?? true);
  }
  return AgentClient.connect(socket, { timeoutMs: options.timeoutMs });
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
  await spawnSupervisor(vm.id);
  return openSocket(files.supervisorSocket);
}
