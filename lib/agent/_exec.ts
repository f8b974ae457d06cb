/**
 * The host side of one exec stream: stdout and stderr fed through credit-managed channels, to
 * Readables or to the caller's callbacks (`onStdout`), stdin as a Writable that waits for
 * credit, and the result.
 *
 * The streams are built when first read, and node:stream loaded then: a command whose output
 * goes to callbacks (a plain `smolvm exec`) never loads it, which cost a new process ~2 ms.
 * Frames that come before a stream is read wait in its channel's queue, within its credit.
 */
import type { Readable, Writable } from "node:stream";
import { TimeoutError, type SmolError } from "../errors.ts";
import { Channel } from "./frame.ts";
import { CallbackSink, InboundChannel, OutboundChannel, type OutboundTransport } from "./_channels.ts";
import { protocolViolation } from "./_errors.ts";
import { ExecResultMessage, type AgentControl, type AgentEvent } from "./messages.ts";
import { deferred } from "../util/deferred.ts";
import type { ExecHandle, ExecResult, OutputCallback } from "./types.ts";

const STREAM_HWM = 64 * 1024;

/** What a stream's owner needs from the connection, bound to one stream id. */
export interface StreamLink extends OutboundTransport {
  readonly id: number;
  readonly window: number;
  control(message: AgentControl): void;
  grant(channel: number, n: number): void;
  cancel(): void;
}

/** Callbacks the client calls for frames of one stream; onEnd exactly once. */
export interface StreamSink {
  readonly op: string;
  onEvent?(event: AgentEvent): void;
  onData?(channel: number, data: Buffer, fin: boolean): void;
  onWindow?(channel: number, n: number): void;
  onEnd(result: unknown, error: SmolError | undefined): void;
}

export class ExecProcess implements ExecHandle, StreamSink {
  readonly op = "exec";
  pid = 0;
  readonly started = deferred<void>();
  private readonly result = deferred<ExecResult>();
  private readonly out: InboundChannel;
  private readonly err: InboundChannel;
  private readonly input: OutboundChannel | undefined;
  private readonly streams: { stdout?: Readable; stderr?: Readable; stdin?: Writable | null } = {};
  /** The output taken by callbacks, delivered whole (or failed). */
  private readonly delivered: Promise<void>[] = [];
  private waited: Promise<ExecResult> | undefined;
  private done = false;
  private readonly t0 = performance.now();
  private deadline: ReturnType<typeof setTimeout> | undefined;

  /**
   * `hostDeadlineMs`: when the host stops waiting for a command whose `timeoutMs` the agent
   * should have enforced (PROTOCOL.md `exec`): it cancels the stream (the agent kills the process
   * group) and ends the handle as timed out, whatever the agent does.
   */
  /** Whether the RESULT was checked already, by the supervisor in front of the agent (known once it answered HELLO). */
  private readonly resultChecked: () => boolean;

  constructor(
    private readonly link: StreamLink,
    private readonly options: {
      stdin: boolean; pty: boolean; timeoutMs?: number; hostDeadlineMs?: number; answersChecked?: () => boolean; onStdout?: OutputCallback; onStderr?: OutputCallback;
    },
  ) {
    this.resultChecked = options.answersChecked ?? (() => false);
    if (options.hostDeadlineMs !== undefined) {
      this.deadline = setTimeout(() => this.deadlinePassed(options.timeoutMs ?? 0), options.hostDeadlineMs);
      this.deadline.unref?.();
    }
    this.out = new InboundChannel((n) => link.grant(Channel.OUT, n), link.window);
    this.err = new InboundChannel((n) => link.grant(Channel.ERR, n), link.window);
    for (const [channel, callback] of [[this.out, options.onStdout], [this.err, options.onStderr]] as const) {
      if (callback === undefined) continue;
      const sink = new CallbackSink(callback, () => channel.pull());
      channel.attach(sink);
      channel.pull();
      this.delivered.push(sink.delivered);
    }
    if (options.pty) this.err.end();
    if (options.stdin || options.pty) this.input = new OutboundChannel(link, link.window);
  }

  get stdout(): Readable {
    return (this.streams.stdout ??= this.readable(this.out, this.options.onStdout));
  }

  get stderr(): Readable {
    return (this.streams.stderr ??= this.readable(this.err, this.options.onStderr));
  }

  get stdin(): Writable | null {
    if (this.streams.stdin !== undefined) return this.streams.stdin;
    const input = this.input;
    return (this.streams.stdin = input === undefined ? null : new (nodeStream().Writable)({
      highWaterMark: STREAM_HWM,
      write: (chunk: Buffer, _enc, cb) => {
        input.write(chunk).then(() => cb(), cb);
      },
      final: (cb) => {
        input.end();
        cb();
      },
    }));
  }

  /** A channel's Readable; an empty, ended one when its output goes to a callback. */
  private readable(channel: InboundChannel, callback: OutputCallback | undefined): Readable {
    const { Readable } = nodeStream();
    if (callback !== undefined) {
      const empty = new Readable({ read: () => {} });
      empty.push(null);
      return empty;
    }
    const stream = new Readable({ highWaterMark: STREAM_HWM, read: () => channel.pull() });
    channel.attach(stream);
    return stream;
  }

  onEvent(event: AgentEvent): void {
    if (event.event === "started") {
      this.pid = event.pid;
      this.started.resolve();
    }
  }

  onData(channel: number, data: Buffer, fin: boolean): void {
    const ch = channel === Channel.OUT ? this.out : channel === Channel.ERR ? this.err : undefined;
    if (!ch) return;
    ch.push(data);
    if (fin) ch.end();
  }

  onWindow(channel: number, n: number): void {
    if (channel === Channel.IN) this.input?.addCredit(n);
  }

  onEnd(result: unknown, error: SmolError | undefined): void {
    if (this.done) return;
    const parsed = error !== undefined ? undefined : this.resultChecked() ? { success: true as const, data: result } : ExecResultMessage.safeParse(result);
    if (parsed !== undefined && !parsed.success) {
      const issue = parsed.error.issues[0];
      return this.finish(protocolViolation(`its exec RESULT is not valid (${issue?.path.join(".") || "result"}: ${issue?.message})`));
    }
    if (error !== undefined) return this.finish(error);
    this.finish(undefined, parsed!.data as ExecResult);
  }

  private finish(error: unknown, result?: ExecResult): void {
    if (this.done) return;
    this.done = true;
    if (this.deadline !== undefined) clearTimeout(this.deadline);
    this.out.end();
    this.err.end();
    if (result === undefined) {
      this.input?.fail(error);
      this.started.reject(error);
      this.result.reject(error);
      return;
    }
    this.input?.close();
    // A command can end before its "started" event is seen (never, from a sound agent).
    this.started.resolve();
    this.result.resolve(result);
  }

  /**
   * The command's timeout and the grace after it have passed without a RESULT: the host kills
   * the process group through the agent (CANCEL) and reports the command as timed out; one that
   * never even started is a TimeoutError.
   */
  private deadlinePassed(timeoutMs: number): void {
    if (this.done) return;
    this.link.cancel();
    if (this.pid === 0) {
      return this.finish(new TimeoutError(`The guest agent did not start the command within its ${timeoutMs / 1000} s timeout`, {
        hint: "the guest may be overloaded or its agent stuck: `smolvm info` shows the sandbox; `smolvm stop` then `start` restarts it",
        details: { timeoutMs },
      }));
    }
    this.finish(undefined, { exitCode: null, signal: "KILL", timedOut: true, hostDeadline: true, durationMs: Math.round(performance.now() - this.t0) });
  }

  /** Ends the handle locally (abort): the agent is told to kill the process group. */
  abort(reason: unknown): void {
    if (this.done) return;
    this.link.cancel();
    this.finish(reason);
  }

  signal(signal: string | number): void {
    if (!this.done) this.link.control({ op: "signal", signal });
  }

  kill(): void {
    this.signal("KILL");
  }

  resize(rows: number, cols: number): void {
    if (!this.done) this.link.control({ op: "resize", rows, cols });
  }

  wait(): Promise<ExecResult> {
    // With callbacks, a command has ended for its caller once its output was taken too.
    return (this.waited ??= this.delivered.length === 0 ? this.result.promise
      : this.result.promise.then(async (result) => (await Promise.all(this.delivered), result)));
  }
}

/** Loaded when a stream is first read (see above); synchronous, in Bun, Deno and Node alike. */
function nodeStream(): typeof import("node:stream") {
  return process.getBuiltinModule("node:stream");
}
