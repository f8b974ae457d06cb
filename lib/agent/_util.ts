/** Helpers shared by the client's operations. */
import { InvalidInputError, TimeoutError, type SmolError } from "../errors.ts";
import { requestProblem, type AgentRequest } from "./messages.ts";
import type { StreamSink } from "./_exec.ts";
import type { AgentEvent } from "./messages.ts";
import type { CallOptions, ExecSpec } from "./types.ts";

/** High-water mark of the Readables and Writables the client hands out. */
export const STREAM_HWM = 64 * 1024;

/**
 * How long past a command's own timeout the host still waits for the guest to report it: the
 * agent kills the process group at the timeout and waits up to 1 s for its pipes, and a loaded
 * guest answers late. After that the host kills the group through the agent itself and stops
 * waiting, so a hung or hostile agent cannot hold a caller past its deadline.
 */
export const HOST_DEADLINE_GRACE_MS = 3_000;

/** The OPEN request of an exec (PROTOCOL.md, "exec"). */
export function execRequest(spec: ExecSpec): Extract<AgentRequest, { op: "exec" }> {
  const pty = spec.pty === true ? {} : spec.pty || undefined;
  return {
    op: "exec",
    ...(spec.argv === undefined ? {} : { argv: spec.argv }),
    ...(spec.shell === undefined ? {} : { shell: spec.shell }),
    ...(spec.env === undefined ? {} : { env: spec.env }),
    ...(spec.cwd === undefined ? {} : { cwd: spec.cwd }),
    ...(spec.stdin ? { stdin: true } : {}),
    ...(spec.timeoutMs === undefined ? {} : { timeoutMs: spec.timeoutMs }),
    ...(pty ? { pty } : {}),
  };
}

/** Arms a timeout and an abort listener; returns the disarm function. */
export function guard(options: CallOptions, what: string, onFire: (error: unknown) => void): () => void {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const onAbort = () => onFire(options.signal!.reason);
  if (options.timeoutMs !== undefined) {
    timer = setTimeout(
      () => onFire(new TimeoutError(`${what}: no answer from the guest agent within ${options.timeoutMs} ms`)),
      options.timeoutMs,
    );
  }
  options.signal?.addEventListener("abort", onAbort, { once: true });
  return () => {
    if (timer) clearTimeout(timer);
    options.signal?.removeEventListener("abort", onAbort);
  };
}

export function validate(request: AgentRequest): string {
  const problem = requestProblem(request);
  if (problem !== undefined) throw new InvalidInputError(problem);
  return JSON.stringify(request);
}

/**
 * A stream's frames, kept until the code that consumes them exists: an exec's OPEN goes out
 * before its streams (node:stream, loaded on first use) are built, so the guest starts the
 * command while this process is still loading.
 */
export class HeldSink implements StreamSink {
  private kept: Array<(sink: StreamSink) => void> = [];
  private end: ((sink: StreamSink) => void) | undefined;
  private target: StreamSink | undefined;

  constructor(readonly op: string) {}

  onEvent(event: AgentEvent): void {
    this.route((sink) => sink.onEvent?.(event));
  }

  onData(channel: number, data: Buffer, fin: boolean): void {
    this.route((sink) => sink.onData?.(channel, data, fin));
  }

  onWindow(channel: number, n: number): void {
    this.route((sink) => sink.onWindow?.(channel, n));
  }

  onEnd(result: unknown, error: SmolError | undefined): void {
    if (this.target === undefined) this.end = (sink) => sink.onEnd(result, error);
    else this.target.onEnd(result, error);
  }

  /**
   * From now on `sink` has the frames: first those kept, in order. A kept end comes a turn of the
   * event loop later, as it would have come from the socket: whoever takes the handle's streams
   * as soon as it has it hears their bytes before the command's end (`wait()`).
   */
  handOver(sink: StreamSink): void {
    this.target = sink;
    for (const call of this.kept.splice(0)) call(sink);
    const end = this.end;
    if (end !== undefined) setImmediate(() => end(sink));
  }

  private route(call: (sink: StreamSink) => void): void {
    if (this.target === undefined) this.kept.push(call);
    else call(this.target);
  }
}
