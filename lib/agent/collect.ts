/**
 * A started command run to its end: its output collected and its stdin fed, whichever channel
 * started it (the agent's exec stream, or an SSH session).
 *
 * Collected output is host memory, so it is bounded: past `maxOutputBytes` (stdout and stderr
 * together) the command's process group is killed and the call fails with RESOURCE_EXHAUSTED.
 * Output meant to be large is streamed with `exec` instead.
 */
import type { Readable } from "node:stream";
import { SmolError } from "../errors.ts";
import { within } from "../util/poll.ts";
import type { AgentRunOptions, AgentRunResult, ExecHandle, ExecSpec } from "./types.ts";

/** What `run` collects at most unless told otherwise. */
export const DEFAULT_MAX_OUTPUT_BYTES = 256 * 1024 * 1024;

type CollectOptions = Pick<AgentRunOptions, "stdin" | "encoding" | "maxOutputBytes">;

/** The exec that runs `command` for `run` (a string through /bin/sh -c), whatever channel starts it. */
export function runSpec(command: string | string[], options: AgentRunOptions): ExecSpec {
  return {
    ...(typeof command === "string" ? { shell: command } : { argv: command }),
    ...(options.env === undefined ? {} : { env: options.env }),
    ...(options.cwd === undefined ? {} : { cwd: options.cwd }),
    stdin: options.stdin !== undefined,
    ...(options.timeoutMs === undefined ? {} : { timeoutMs: options.timeoutMs }),
    ...(options.signal === undefined ? {} : { signal: options.signal }),
    ...(options.pty === undefined ? {} : { pty: options.pty }),
  };
}

export function collect(handle: ExecHandle, options: Pick<AgentRunOptions, "stdin" | "maxOutputBytes"> & { encoding: "buffer" }): Promise<AgentRunResult<Buffer>>;
export function collect(handle: ExecHandle, options?: CollectOptions): Promise<AgentRunResult<string>>;
export async function collect(handle: ExecHandle, options: CollectOptions = {}): Promise<AgentRunResult<string | Buffer>> {
  const limit = options.maxOutputBytes ?? DEFAULT_MAX_OUTPUT_BYTES;
  const out: Buffer[] = [];
  const err: Buffer[] = [];
  let total = 0;
  let overflow: SmolError | undefined;
  let onOverflow: (error: SmolError) => void = () => {};
  const overflowed = new Promise<never>((_, reject) => (onOverflow = reject));
  overflowed.catch(() => {});
  const drained = (stream: Readable, into: Buffer[]) =>
    new Promise<void>((resolve) => {
      stream.on("data", (chunk: Buffer) => {
        if (overflow !== undefined) return;
        total += chunk.length;
        if (total > limit) {
          overflow = new SmolError("RESOURCE_EXHAUSTED", `Cannot collect the command's output: it printed more than ${limit} bytes`, {
            hint: "stream large output with `exec` (SDK: vm.commands.exec) or redirect it to a file, or raise maxOutputBytes",
            details: { maxOutputBytes: limit },
          });
          handle.kill();
          out.length = 0;
          err.length = 0;
          handle.stdout.destroy();
          handle.stderr.destroy();
          onOverflow(overflow);
          return resolve();
        }
        into.push(chunk);
      });
      stream.once("end", resolve);
      stream.once("close", resolve);
      stream.once("error", () => resolve());
    });
  const outDone = drained(handle.stdout, out);
  const errDone = drained(handle.stderr, err);
  if (handle.stdin && options.stdin !== undefined) {
    const stdin = handle.stdin;
    stdin.on("error", () => {}); // the command may exit without reading: not our failure
    const input = options.stdin;
    if (isReadable(input)) input.pipe(stdin);
    else stdin.end(typeof input === "string" ? Buffer.from(input) : input);
  }
  try {
    const result = await Promise.race([handle.wait(), overflowed]);
    await Promise.race([Promise.all([outDone, errDone]), overflowed]);
    return { ...result, stdout: pick(out, options.encoding), stderr: pick(err, options.encoding) };
  } catch (error) {
    // The command was killed for its output: the call ends once it has (or a few seconds on).
    if (error === overflow) await within(handle.wait().catch(() => undefined), 5_000);
    throw error;
  }
}

function pick(parts: Buffer[], encoding: CollectOptions["encoding"]): string | Buffer {
  const bytes = Buffer.concat(parts);
  return encoding === "buffer" ? bytes : bytes.toString("utf8");
}

/** A stream to pipe in, told from bytes without loading node:stream (a run without one must not pay for it). */
function isReadable(input: string | Uint8Array | Readable): input is Readable {
  return typeof (input as Readable).pipe === "function";
}
