/**
 * The host side of one exec stream: stdout and stderr as Readables fed through credit-managed
 * channels, stdin as a Writable that waits for credit, and the result.
 */
import { Readable, Writable } from "node:stream";
import type { SmolError } from "../errors.ts";
import { Channel } from "./frame.ts";
import { InboundChannel, OutboundChannel, type OutboundTransport } from "./_channels.ts";
import { ExecResultMessage, type AgentControl, type AgentEvent } from "./messages.ts";
import { deferred } from "../util/deferred.ts";
import type { ExecHandle, ExecResult } from "./types.ts";

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
  readonly stdout: Readable;
  readonly stderr: Readable;
  readonly stdin: Writable | null;
  readonly started = deferred<void>();
  private readonly result = deferred<ExecResult>();
  private readonly out: InboundChannel;
  private readonly err: InboundChannel;
  private readonly input: OutboundChannel | undefined;
  private done = false;

  constructor(
    private readonly link: StreamLink,
    options: { stdin: boolean; pty: boolean },
  ) {
    this.out = new InboundChannel((n) => link.grant(Channel.OUT, n), link.window);
    this.err = new InboundChannel((n) => link.grant(Channel.ERR, n), link.window);
    this.stdout = new Readable({ highWaterMark: STREAM_HWM, read: () => this.out.pull() });
    this.stderr = new Readable({ highWaterMark: STREAM_HWM, read: () => this.err.pull() });
    this.out.attach(this.stdout);
    this.err.attach(this.stderr);
    if (options.pty) this.err.end();
    if (options.stdin || options.pty) {
      const input = new OutboundChannel(link, link.window);
      this.input = input;
      this.stdin = new Writable({
        highWaterMark: STREAM_HWM,
        write: (chunk: Buffer, _enc, cb) => {
          input.write(chunk).then(() => cb(), cb);
        },
        final: (cb) => {
          input.end();
          cb();
        },
      });
    } else {
      this.stdin = null;
    }
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
    this.done = true;
    this.out.end();
    this.err.end();
    if (error) {
      this.input?.fail(error);
      this.started.reject(error);
      this.result.reject(error);
      return;
    }
    this.input?.close();
    this.result.resolve(ExecResultMessage.parse(result));
  }

  /** Ends the handle locally (abort): the agent is told to kill the process group. */
  abort(reason: unknown): void {
    if (this.done) return;
    this.link.cancel();
    this.done = true;
    this.out.end();
    this.err.end();
    this.input?.fail(reason);
    this.started.reject(reason);
    this.result.reject(reason);
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
    return this.result.promise;
  }
}
