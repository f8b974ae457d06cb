/**
 * Starts a sandbox's supervisor: the same smolvm executable re-run with a hidden subcommand,
 * detached into its own session so it outlives the CLI call (and a Ctrl-C in the terminal).
 */
import { spawn } from "node:child_process";
import { mkdirSync, openSync, closeSync } from "node:fs";
import { selfCommand } from "../host/self.ts";
import { vmFiles } from "./layout.ts";

export const SUPERVISE_COMMAND = "__supervise";

export function spawnSupervisor(id: string): number {
  const files = vmFiles(id);
  mkdirSync(files.dir, { recursive: true, mode: 0o700 });
  const log = openSync(files.supervisorLog, "a");
  try {
    const { file, args } = selfCommand([SUPERVISE_COMMAND, id]);
    const child = spawn(file, args, {
      detached: true,
      stdio: ["ignore", log, log],
      env: { ...process.env, SMOLVM_SUPERVISOR: "1" },
    });
    child.unref();
    if (child.pid === undefined) throw new Error("the supervisor process did not start");
    return child.pid;
  } finally {
    closeSync(log);
  }
}
