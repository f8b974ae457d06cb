/**
 * One command over an SSH session channel, behind the same `ExecHandle` the agent channel
 * returns. The remote wrapper (command.ts) reports the pid on its first line (stderr, or
 * the terminal with a PTY), which is stripped from the output; signals, kills and timeouts go to
 * the whole process group through a second, short exec (`kill -SIG -- -PGID`), as the agent
 * does it.
 */
import { PassThrough, Readable, Transform, Writable, type TransformCallback } from "node:stream";
import type { ClientChannel } from "ssh2";
import type { ExecHandle, ExecResult, OutputCallback } from "../agent/types.ts";
import { CommandFailedError, InvalidInputError, NotFoundError, SmolError, TimeoutError } from "../errors.ts";
import { killSignal, parseMarker } from "./command.ts";
import { deferred } from "../util/deferred.ts";
import { HOST_DEADLINE_GRACE_MS } from "../agent/_util.ts";
import { CallbackSink } from "../agent/_channels.ts";

/** The wrapper's marker line is short; a first line longer than this is not one (and is not held). */
const MAX_MARKER_LINE = 4096;

/**
 * Passes bytes through, except the first line, which goes to `onLine` (null if none came, or if
 * it grew past MAX_MARKER_LINE without ending: then it is passed through as output).
 */
class FirstLineTap extends Transform {
  private head: Buffer[] | undefined = [];
  private headBytes = 0;

  constructor(private readonly onLine: (line: string | null) => void) {
    super();
  }

  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    if (this.head === undefined) return cb(null, chunk);
    const at = chunk.indexOf(0x0a);
    if (at < 0) {
      this.head.push(chunk);
      this.headBytes += chunk.length;
      if (this.headBytes <= MAX_MARKER_LINE) return cb();
      const held = Buffer.concat(this.head);
      this.head = undefined;
      this.onLine(null);
      return cb(null, held);
    }
    const line = Buffer.concat([...this.head, chunk.subarray(0, at)]).toString("utf8");
    this.head = undefined;
    this.onLine(line);
    cb(null, at + 1 < chunk.length ? chunk.subarray(at + 1) : undefined);
  }

  override _flush(cb: TransformCallback): void {
    if (this.head !== undefined) {
      const rest = Buffer.concat(this.head);
      this.head = undefined;
      this.onLine(null);
      return cb(null, rest.length > 0 ? rest : undefined);
    }
    cb();
  }
}

export interface SshExecOptions {
  stdin: boolean;
  pty: boolean;
  cwd?: string;
  timeoutMs?: number;
  signal?: AbortSignal;
  /** Sends a signal to a process group in the guest (`kill -SIG -- -pgid`). */
  sendSignal: (pgid: number, signal: string) => Promise<void>;
  /** The error for a connection that went away mid-command. */
  lost: (why: string) => SmolError;
  onStdout?: OutputCallback;
  onStderr?: OutputCallback;
}

export class SshExecProcess implements ExecHandle {
  pid = 0;
  readonly stdout: Readable;
  readonly stderr: Readable;
  readonly stdin: Writable | null;
  readonly started = deferred<void>();
  /** Output taken by callbacks (onStdout, onStderr), delivered whole. */
  private readonly feeds: Promise<void>[] = [];
  private readonly result = deferred<ExecResult>();
  private readonly t0 = performance.now();
  private exit: { code: number | null; signal: string | null } | undefined;
  private timedOut = false;
  private timer: ReturnType<typeof setTimeout> | undefined;
  private hostTimer: ReturnType<typeof setTimeout> | undefined;
  private pendingSignals: string[] = [];
  private done = false;

  constructor(
    private readonly channel: ClientChannel,
    private readonly options: SshExecOptions,
  ) {
    const tap = new FirstLineTap((line) => this.onMarker(line));
    if (options.pty) {
      this.stdout = channel.pipe(tap);
      this.stderr = ended();
      channel.stderr.resume();
    } else {
      this.stdout = channel.pipe(new PassThrough());
      this.stderr = channel.stderr.pipe(tap);
    }
    if (options.onStdout !== undefined) {
      this.feeds.push(feed(this.stdout, options.onStdout));
      this.stdout = ended();
    }
    if (options.onStderr !== undefined) {
      this.feeds.push(feed(this.stderr, options.onStderr));
      this.stderr = ended();
    }
    if (options.stdin || options.pty) {
      this.stdin = new Writable({
        write: (chunk: Buffer, _enc, cb) => {
          if (channel.write(chunk)) cb();
          else channel.once("drain", () => cb());
        },
        final: (cb) => {
          if (!options.pty) channel.end();
          cb();
        },
      });
    } else {
      this.stdin = null;
      channel.end();
    }
    channel.on("exit", (code: number | null, signal?: string) => {
      // ssh2 names signals "SIGKILL"; the agent (and RFC 4254) say "KILL".
      this.exit = { code: typeof code === "number" ? code : null, signal: signal ? signal.replace(/^SIG/, "") : null };
    });
    channel.on("close", () => this.onClose());
    if (options.timeoutMs !== undefined) {
      this.timer = setTimeout(() => {
        this.timedOut = true;
        this.kill();
      }, options.timeoutMs);
      // The kill is a second exec over the same connection: a guest that stopped answering
      // would hold the caller forever, so the host stops waiting after a grace.
      this.hostTimer = setTimeout(() => this.deadlinePassed(), options.timeoutMs + HOST_DEADLINE_GRACE_MS);
      this.hostTimer.unref?.();
    }
    if (options.signal) {
      const signal = options.signal;
      const onAbort = () => this.abort(signal.reason);
      signal.addEventListener("abort", onAbort, { once: true });
      this.result.promise.finally(() => signal.removeEventListener("abort", onAbort)).catch(() => {});
    }
  }

  private onMarker(line: string | null): void {
    const marker = line === null ? undefined : parseMarker(line);
    if (marker !== undefined && "pid" in marker) {
      this.pid = marker.pid;
      this.started.resolve();
      for (const signal of this.pendingSignals.splice(0)) this.signal(signal);
      return;
    }
    if (marker !== undefined && "noCwd" in marker) {
      this.started.reject(new NotFoundError(`Cannot run the command: the working directory "${this.options.cwd}" does not exist in the sandbox`, {
        hint: "create it first, or pass another cwd",
      }));
      return;
    }
    this.started.reject(new CommandFailedError(`Cannot run the command over SSH: the remote shell did not start it${line ? ` (${line})` : ""}`));
  }

  /** The timeout and its grace passed without the session ending: report it as timed out. */
  private deadlinePassed(): void {
    if (this.done) return;
    this.done = true;
    this.channel.close();
    if (this.pid === 0) {
      const error = new TimeoutError(`Cannot run the command over SSH: it did not start within its ${(this.options.timeoutMs ?? 0) / 1000} s timeout`, {
        hint: "the guest may be overloaded or frozen: `smolvm info` shows the sandbox",
      });
      this.started.reject(error);
      this.result.reject(error);
      return;
    }
    this.result.resolve({ exitCode: null, signal: "KILL", timedOut: true, hostDeadline: true, durationMs: Math.round(performance.now() - this.t0) });
  }

  private onClose(): void {
    if (this.done) return;
    this.done = true;
    if (this.timer) clearTimeout(this.timer);
    if (this.hostTimer) clearTimeout(this.hostTimer);
    const exit = this.exit;
    if (exit === undefined) {
      const error = this.options.lost("the connection closed before the command finished");
      this.started.reject(error);
      this.result.reject(error);
      return;
    }
    this.started.reject(new CommandFailedError("Cannot run the command over SSH: it ended before it started"));
    this.result.resolve({
      exitCode: exit.code,
      signal: exit.signal,
      timedOut: this.timedOut,
      durationMs: Math.round(performance.now() - this.t0),
    });
  }

  /** Ends the handle locally: the command is killed and wait() rejects with the reason. */
  private abort(reason: unknown): void {
    if (this.done) return;
    this.kill();
    this.done = true;
    if (this.timer) clearTimeout(this.timer);
    if (this.hostTimer) clearTimeout(this.hostTimer);
    this.started.reject(reason);
    this.result.reject(reason);
    this.channel.close();
  }

  signal(signal: string | number): void {
    const name = killSignal(signal);
    if (name === undefined) throw new InvalidInputError(`Invalid signal ${JSON.stringify(signal)}`, { hint: 'use a name such as "TERM" or a number' });
    if (this.pid === 0) {
      this.pendingSignals.push(name);
      return;
    }
    if (this.exit !== undefined) return;
    void this.options.sendSignal(this.pid, name).catch(() => {});
  }

  kill(): void {
    this.signal("KILL");
  }

  resize(rows: number, cols: number): void {
    if (this.options.pty) this.channel.setWindow(rows, cols, 0, 0);
  }

  wait(): Promise<ExecResult> {
    // With callbacks, a command has ended for its caller once its output was taken too.
    return this.feeds.length === 0 ? this.result.promise : this.result.promise.then(async (result) => (await Promise.all(this.feeds), result));
  }
}

function ended(): Readable {
  const stream = new PassThrough();
  stream.end();
  return stream;
}

/**
 * `stream` read into `callback` under the same rules as the agent's channels (CallbackSink): a
 * pending promise pauses the stream; after a failure the rest is read and dropped, so the
 * command does not block.
 */
function feed(stream: Readable, callback: OutputCallback): Promise<void> {
  const sink = new CallbackSink(callback, () => stream.resume());
  stream.on("data", (chunk: Buffer) => {
    if (!sink.destroyed && !sink.push(chunk) && !sink.destroyed) stream.pause();
  });
  const ended = () => void sink.push(null);
  stream.once("end", ended);
  stream.once("close", ended);
  return sink.delivered;
}
