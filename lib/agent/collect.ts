/**
 * A started command run to its end: its output collected and its stdin fed, whichever channel
 * started it (the agent's exec stream, or an SSH session).
 */
import { Readable } from "node:stream";
import type { AgentRunOptions, AgentRunResult, ExecHandle } from "./types.ts";

export function collect(handle: ExecHandle, options: Pick<AgentRunOptions, "stdin"> & { encoding: "buffer" }): Promise<AgentRunResult<Buffer>>;
export function collect(handle: ExecHandle, options?: Pick<AgentRunOptions, "stdin" | "encoding">): Promise<AgentRunResult<string>>;
export async function collect(handle: ExecHandle, options: Pick<AgentRunOptions, "stdin" | "encoding"> = {}): Promise<AgentRunResult<string | Buffer>> {
  const out: Buffer[] = [];
  const err: Buffer[] = [];
  const drained = (stream: Readable, into: Buffer[]) =>
    new Promise<void>((resolve) => {
      stream.on("data", (chunk: Buffer) => into.push(chunk));
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
    if (input instanceof Readable) input.pipe(stdin);
    else stdin.end(typeof input === "string" ? Buffer.from(input) : input);
  }
  const result = await handle.wait();
  await Promise.all([outDone, errDone]);
  const pick = (parts: Buffer[]) => {
    const bytes = Buffer.concat(parts);
    return options.encoding === "buffer" ? bytes : bytes.toString("utf8");
  };
  return { ...result, stdout: pick(out), stderr: pick(err) };
}
