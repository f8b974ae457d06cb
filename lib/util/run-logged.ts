/**
 * Runs a long build step (make, mmdebstrap, mkfs) with its output appended to a log file and
 * handed to the caller line by line, so progress can be derived from it without printing here.
 */
import { spawn } from "node:child_process";
import { createWriteStream } from "node:fs";
import { CommandFailedError, HostDependencyMissingError } from "../errors.ts";
import { onInterrupt } from "../host/interrupt.ts";

export interface RunLoggedOptions {
  cwd?: string;
  env?: NodeJS.ProcessEnv;
  /** Appended to, never truncated: one log holds every step of a build. */
  logPath: string;
  onLine?: (line: string) => void;
  /** Failure message prefix, e.g. `Cannot build the kernel`. */
  action: string;
  timeoutMs?: number;
}

const TAIL_LINES = 15;

/** Resolves when the program exits 0; otherwise throws with the last lines of its output. */
export async function runLogged(file: string, args: readonly string[], options: RunLoggedOptions): Promise<void> {
  const log = createWriteStream(options.logPath, { flags: "a" });
  log.write(`$ ${[file, ...args].join(" ")}\n`);
  const tail: string[] = [];
  const child = spawn(file, args, {
    cwd: options.cwd,
    env: options.env ?? process.env,
    // A process group of its own, ended as a whole: make's compilers and mmdebstrap's apt run
    // below a shell or perl that would not pass a signal on. Ctrl-C reaches it through
    // onInterrupt (below), which is also what a SIGTERM to smolvm alone needs.
    detached: true,
    stdio: ["ignore", "pipe", "pipe"],
  });
  const killGroup = (signal: NodeJS.Signals) => {
    try {
      if (child.pid !== undefined) process.kill(-child.pid, signal);
    } catch {
      // Already gone.
    }
  };
  const undoInterrupt = onInterrupt(() => killGroup("SIGTERM"));
  const timer = options.timeoutMs === undefined ? undefined : setTimeout(() => killGroup("SIGKILL"), options.timeoutMs);

  const feed = (stream: NodeJS.ReadableStream) => {
    let partial = "";
    stream.setEncoding("utf8");
    stream.on("data", (chunk: string) => {
      log.write(chunk);
      const parts = (partial + chunk).split("\n");
      partial = parts.pop() ?? "";
      for (const line of parts) emit(line);
    });
    stream.on("end", () => {
      if (partial) emit(partial);
    });
  };
  const emit = (line: string) => {
    tail.push(line);
    if (tail.length > TAIL_LINES) tail.shift();
    options.onLine?.(line);
  };
  feed(child.stdout!);
  feed(child.stderr!);

  const { code, signal } = await new Promise<{ code: number | null; signal: NodeJS.Signals | null }>(
    (resolve, reject) => {
      child.on("error", reject);
      child.on("close", (c, s) => resolve({ code: c, signal: s }));
    },
  ).catch((error: NodeJS.ErrnoException) => {
    if (error.code === "ENOENT") {
      throw new HostDependencyMissingError(`${options.action}: "${file}" is not installed`, {
        hint: "run `smolvm setup` to install the host packages smolvm needs",
      });
    }
    throw error;
  }).finally(() => {
    if (timer) clearTimeout(timer);
    undoInterrupt();
  });
  await new Promise<void>((resolve) => log.end(resolve));
  if (code === 0) return;
  const why = signal ? `killed by ${signal}` : `exit status ${code}`;
  const last = tail.filter((l) => l.trim()).at(-1)?.trim();
  throw new CommandFailedError(`${options.action}: ${file} failed (${why})${last ? `: ${last}` : ""}`, {
    hint: `the full output is in ${options.logPath}`,
    details: { file, args: [...args], code, signal, log: options.logPath, tail },
  });
}
