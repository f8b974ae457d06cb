/** Starting the QEMU process itself, detached, with its output in a log file. */
import { spawn, type ChildProcess } from "node:child_process";
import { closeSync, openSync } from "node:fs";
import { mkdir } from "node:fs/promises";
import { dirname, resolve } from "node:path";
import { BackendUnavailableError } from "../../errors.ts";
import { qemuBinary } from "../accel.ts";
import type { VmmExit } from "../types.ts";
import { qemuArgs, type QemuSpec } from "./args.ts";

export interface QemuProcess {
  pid: number;
  child: ChildProcess;
  /** Resolves when QEMU ends. */
  exited: Promise<VmmExit>;
  kill(signal?: NodeJS.Signals): void;
}

/**
 * Starts QEMU for `spec` in its own process group, with its stdout and stderr appended to
 * `logFile` (or discarded), and resolves once the process exists. It does not wait for QEMU to
 * be ready: connect to its QMP socket for that.
 */
export async function launchQemu(
  spec: QemuSpec,
  options: { logFile?: string; binary?: string; prefix?: readonly string[]; onProcess?: (pid: number) => void } = {},
): Promise<QemuProcess> {
  const qemu = options.binary ?? qemuBinary(spec.arch);
  // A prefix (the user network's namespace wrapper) execs QEMU in the end: the pid stays QEMU's.
  const [binary, ...args] = [...(options.prefix ?? []), qemu, ...qemuArgs(spec)] as [string, ...string[]];
  let logFd: number | undefined;
  if (options.logFile !== undefined) {
    await mkdir(dirname(resolve(options.logFile)), { recursive: true });
    logFd = openSync(options.logFile, "a");
  }
  let child: ChildProcess;
  try {
    child = spawn(binary, args, {
      detached: true,
      stdio: ["ignore", logFd ?? "ignore", logFd ?? "ignore"],
    });
  } finally {
    if (logFd !== undefined) closeSync(logFd);
  }
  // Before anything else can happen to this process: whoever launches it records it now.
  if (child.pid !== undefined) {
    try {
      options.onProcess?.(child.pid);
    } catch (error) {
      // Unrecorded, it would be an orphan: it goes.
      process.kill(child.pid, "SIGKILL");
      throw error;
    }
  }
  const exited = new Promise<VmmExit>((resolveExit) => {
    child.once("exit", (code, signal) => resolveExit({ code, signal }));
  });
  await new Promise<void>((resolveSpawn, reject) => {
    child.once("spawn", () => resolveSpawn());
    child.once("error", (error) => {
      reject(new BackendUnavailableError(`Cannot start QEMU ("${binary}"): ${error.message}`, {
        cause: error,
        hint: "run `smolvm setup` to install QEMU",
      }));
    });
  });
  const pid = child.pid!;
  // QEMU outlives whoever launched it (a CLI call hands it to the supervisor): never let it
  // hold the launcher's event loop open.
  child.unref();
  return {
    pid,
    child,
    exited,
    kill(signal: NodeJS.Signals = "SIGKILL") {
      try {
        process.kill(pid, signal);
      } catch { /* already gone */ }
    },
  };
}

