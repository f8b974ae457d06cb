/**
 * Starting a sandbox's supervisor: this executable re-run with a hidden subcommand, detached so
 * it outlives the caller and a Ctrl-C in its terminal. Apart from connecting (supervisor-client.ts)
 * because a command in a running sandbox never needs it.
 */
import { spawn } from "node:child_process";
import { closeSync, mkdirSync, openSync } from "node:fs";
import type { Readable } from "node:stream";
import { AgentUnavailableError } from "../errors.ts";
import { selfCommand } from "../host/self.ts";
import { tailOf } from "../util/tail.ts";
import { sandboxFiles } from "./layout.ts";
import { SUPERVISE_COMMAND } from "./processes.ts";

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
