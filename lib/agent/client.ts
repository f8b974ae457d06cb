/**
 * AgentClient: the host side of the agent protocol over any byte stream (a Unix socket to the
 * test agent or to the supervisor, the virtio-serial chardev socket, a vsock bridge).
 *
 *   const agent = await AgentClient.connect(socket);
 *   const { exitCode, stdout } = await agent.run("uname -a");
 *
 * Every operation is one stream; many run at once over the one connection. When the connection
 * drops, every pending call rejects with AgentUnavailableError.
 */
import { randomBytes } from "node:crypto";
import { Duplex, Readable } from "node:stream";
import type { z } from "zod";
import { AgentUnavailableError, InvalidInputError, SmolError, TimeoutError } from "../errors.ts";
import { versionInfo } from "../version.ts";
import { agentError, AGENT_GONE_HINT, connectionLost } from "./_errors.ts";
import { InboundChannel, OutboundChannel } from "./_channels.ts";
import { ExecProcess, type ExecHandle, type ExecResult, type StreamLink, type StreamSink } from "./_exec.ts";
import {
  Channel,
  CHANNEL_MASK,
  dataFlags,
  encodeFrame,
  FLAG_FIN,
  FrameDecoder,
  FrameType,
  RESYNC_PAD_SIZE,
  type Frame,
} from "./frame.ts";
import {
  AgentErrorPayload,
  AgentEvent,
  AgentHello,
  AgentRequest,
  EmptyResult,
  EnvResult,
  HostHello,
  PingResult,
  PROTOCOL,
  ReseedResult,
  SetTimeResult,
  SizeResult,
  type AgentControl,
} from "./messages.ts";

const STREAM_HWM = 64 * 1024;
const MAX_STREAM_ID = 0x7fffffff;

export interface ConnectOptions {
  /** How long to wait for the agent's HELLO (default 10 000 ms). */
  timeoutMs?: number;
  signal?: AbortSignal;
  /** Echoed by the agent; random by default. */
  nonce?: string;
  /** Send the resync pad first: for a virtio port whose previous host may have died mid-frame. */
  resync?: boolean;
  /** Ask a PID-1 agent to set its clock (ms since the epoch) while answering HELLO. */
  timeMs?: number;
  /** Connection-level complaints of the agent (a bad CONTROL, an unknown frame type). */
  onAgentError?: (error: AgentErrorPayload) => void;
}

/** Per-call limits. `timeoutMs` covers the whole operation, transfer included. */
export interface CallOptions {
  timeoutMs?: number;
  signal?: AbortSignal;
}

export interface ExecSpec {
  /** Program and arguments; argv[0] is looked up on PATH. Exactly one of argv and shell. */
  argv?: string[];
  /** A command line for /bin/sh -c. */
  shell?: string;
  /** Added to the base and managed environment; wins over both. */
  env?: Record<string, string>;
  /** Default /root (or / when missing). */
  cwd?: string;
  /** Give the command a stdin pipe (otherwise /dev/null). */
  stdin?: boolean;
  /** The agent kills the whole process group after this long; the result says timedOut. */
  timeoutMs?: number;
  /** Run on a pseudo-terminal. */
  pty?: boolean | { rows?: number; cols?: number; term?: string };
  /** Aborting kills the process group and rejects wait() with the signal's reason. */
  signal?: AbortSignal;
}

export interface RunOptions {
  env?: Record<string, string>;
  cwd?: string;
  /** Fed to the command's stdin, which is then closed. */
  stdin?: string | Uint8Array | Readable;
  timeoutMs?: number;
  signal?: AbortSignal;
  pty?: ExecSpec["pty"];
  /** "utf8" (default) gives strings; "buffer" gives Buffers. */
  encoding?: "utf8" | "buffer";
}

export interface RunResult<T extends string | Buffer = string> extends ExecResult {
  stdout: T;
  stderr: T;
}

export interface WriteFileOptions extends CallOptions {
  /** Permission bits, applied exactly (default 0o644). */
  mode?: number;
  /** Create missing parent directories (mode 0755). */
  mkdirParents?: boolean;
}

export interface ReadFileHandle {
  size: number;
  mode: number;
  stream: Readable;
}

export interface PingResultInfo {
  rttMs: number;
  timeMs: number;
  bootTimeMs: number;
}

export interface AgentEnv {
  /** Sets managed variables; resolves to the whole managed set afterwards. */
  set(vars: Record<string, string>, options?: CallOptions): Promise<Record<string, string>>;
  unset(names: string[], options?: CallOptions): Promise<Record<string, string>>;
  list(options?: CallOptions): Promise<Record<string, string>>;
}

/** Arms a timeout and an abort listener; returns the disarm function. */
function guard(options: CallOptions, what: string, onFire: (error: unknown) => void): () => void {
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

function validate(request: AgentRequest): string {
  const parsed = AgentRequest.safeParse(request);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw new InvalidInputError(`Invalid ${request.op} request: ${issue?.path.join(".") || "request"}: ${issue?.message}`);
  }
  return JSON.stringify(request);
}

export class AgentClient {
  /** What the agent said about itself: versions, capabilities, limits, boot time. */
  hello!: AgentHello;
  readonly env: AgentEnv;
  /** Resolves (never rejects) once the connection is gone, with the reason. */
  readonly closed: Promise<SmolError>;

  private readonly decoder: FrameDecoder;
  private readonly streams = new Map<number, StreamSink>();
  private nextId = 1;
  private failure: SmolError | undefined;
  private needDrain = false;
  private drainWaiters: Array<{ resolve: () => void; reject: (e: unknown) => void }> = [];
  private helloWaiter: { nonce: string; resolve: () => void; reject: (e: unknown) => void } | undefined;
  private resolveClosed!: (e: SmolError) => void;
  private window = 262144;

  private constructor(
    private readonly socket: Duplex,
    private readonly options: ConnectOptions,
  ) {
    this.decoder = new FrameDecoder({ hunt: options.resync ?? false });
    this.closed = new Promise((resolve) => (this.resolveClosed = resolve));
    this.env = {
      set: (vars, o) => this.call({ op: "env.set", vars }, EnvResult, o).then((r) => r.vars),
      unset: (names, o) => this.call({ op: "env.unset", names }, EnvResult, o).then((r) => r.vars),
      list: (o) => this.call({ op: "env.list" }, EnvResult, o).then((r) => r.vars),
    };
    const onData = (chunk: Buffer) => this.onBytes(chunk);
    socket.on("data", onData);
    socket.on("drain", () => {
      this.needDrain = false;
      for (const w of this.drainWaiters.splice(0)) w.resolve();
    });
    socket.on("error", (err: Error) => this.fail(connectionLost(err.message, err)));
    socket.on("end", () => this.fail(connectionLost("the agent closed the connection")));
    socket.on("close", () => this.fail(connectionLost("the connection closed")));
  }

  /** Performs the HELLO exchange on an open byte stream and returns a ready client. */
  static async connect(socket: Duplex, options: ConnectOptions = {}): Promise<AgentClient> {
    const client = new AgentClient(socket, options);
    try {
      await client.handshake(options);
    } catch (error) {
      client.fail(error instanceof SmolError ? error : connectionLost(String(error), error));
      throw error;
    }
    return client;
  }

  private handshake(options: ConnectOptions): Promise<void> {
    const nonce = options.nonce ?? randomBytes(12).toString("hex");
    const hello = HostHello.parse({
      protocol: PROTOCOL,
      nonce,
      client: `smolvm/${versionInfo().version}`,
      ...(options.timeMs === undefined ? {} : { timeMs: options.timeMs }),
    });
    const timeoutMs = options.timeoutMs ?? 10_000;
    return new Promise<void>((resolve, reject) => {
      const disarm = guard({ timeoutMs, signal: options.signal }, "Cannot connect to the guest agent", (e) =>
        reject(
          e instanceof TimeoutError
            ? new AgentUnavailableError(`Cannot connect to the guest agent: no HELLO within ${timeoutMs} ms`, {
                hint: "the guest may still be booting, or its image has no smolvm agent",
                cause: e,
              })
            : e,
        ),
      );
      this.helloWaiter = {
        nonce,
        resolve: () => {
          disarm();
          resolve();
        },
        reject: (e) => {
          disarm();
          reject(e);
        },
      };
      if (options.resync) this.write(Buffer.alloc(RESYNC_PAD_SIZE));
      this.write(encodeFrame(FrameType.HELLO, 0, JSON.stringify(hello)));
    });
  }

  /** True once the connection is gone. */
  get isClosed(): boolean {
    return this.failure !== undefined;
  }

  // ---------------------------------------------------------------- operations

  /** Starts a command; resolves once the process exists (its pid is known). */
  async exec(spec: ExecSpec): Promise<ExecHandle> {
    const pty = spec.pty === true ? {} : spec.pty || undefined;
    const body = validate({
      op: "exec",
      ...(spec.argv === undefined ? {} : { argv: spec.argv }),
      ...(spec.shell === undefined ? {} : { shell: spec.shell }),
      ...(spec.env === undefined ? {} : { env: spec.env }),
      ...(spec.cwd === undefined ? {} : { cwd: spec.cwd }),
      ...(spec.stdin ? { stdin: true } : {}),
      ...(spec.timeoutMs === undefined ? {} : { timeoutMs: spec.timeoutMs }),
      ...(pty ? { pty } : {}),
    });
    spec.signal?.throwIfAborted();
    const id = this.allocId();
    const proc = new ExecProcess(this.link(id), { stdin: !!spec.stdin, pty: !!pty });
    this.open(id, body, proc);
    if (spec.signal) {
      const signal = spec.signal;
      const onAbort = () => proc.abort(signal.reason);
      signal.addEventListener("abort", onAbort, { once: true });
      proc.wait().then(
        () => signal.removeEventListener("abort", onAbort),
        () => signal.removeEventListener("abort", onAbort),
      );
    }
    await proc.started.promise;
    return proc;
  }

  /** Runs a command to completion and collects its output. A string runs through /bin/sh -c. */
  run(command: string | string[], options: RunOptions & { encoding: "buffer" }): Promise<RunResult<Buffer>>;
  run(command: string | string[], options?: RunOptions): Promise<RunResult<string>>;
  async run(command: string | string[], options: RunOptions = {}): Promise<RunResult<string | Buffer>> {
    const handle = await this.exec({
      ...(typeof command === "string" ? { shell: command } : { argv: command }),
      env: options.env,
      cwd: options.cwd,
      stdin: options.stdin !== undefined,
      timeoutMs: options.timeoutMs,
      signal: options.signal,
      pty: options.pty,
    });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    const ended = (r: Readable, into: Buffer[]) =>
      new Promise<void>((resolve) => {
        r.on("data", (b: Buffer) => into.push(b));
        r.once("end", resolve);
        r.once("close", resolve);
      });
    const outDone = ended(handle.stdout, out);
    const errDone = ended(handle.stderr, err);
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
      const b = Buffer.concat(parts);
      return options.encoding === "buffer" ? b : b.toString("utf8");
    };
    return { ...result, stdout: pick(out), stderr: pick(err) };
  }

  /** Writes a file atomically (temp file + rename in the guest). */
  async writeFile(
    path: string,
    data: string | Uint8Array | Readable | AsyncIterable<Uint8Array>,
    options: WriteFileOptions = {},
  ): Promise<{ size: number }> {
    const body = validate({
      op: "writeFile",
      path,
      ...(options.mode === undefined ? {} : { mode: options.mode }),
      ...(options.mkdirParents ? { mkdirParents: true } : {}),
    });
    options.signal?.throwIfAborted();
    return new Promise((resolve, reject) => {
      const id = this.allocId();
      const link = this.link(id);
      const output = new OutboundChannel(link, this.window);
      let settled = false;
      const finish = (error: unknown, value?: { size: number }) => {
        if (settled) return;
        settled = true;
        disarm();
        output.fail(error ?? new Error("finished"));
        if (error) reject(error);
        else resolve(value!);
      };
      const disarm = guard(options, `Cannot write "${path}"`, (e) => {
        link.cancel();
        finish(e);
      });
      this.open(id, body, {
        op: "writeFile",
        onWindow: (ch, n) => ch === Channel.IN && output.addCredit(n),
        onEnd: (result, error) => finish(error, error ? undefined : SizeResult.parse(result)),
      });
      (async () => {
        if (typeof data === "string" || data instanceof Uint8Array) {
          await output.write(typeof data === "string" ? Buffer.from(data) : data);
        } else {
          for await (const chunk of data as AsyncIterable<Uint8Array | string>) {
            await output.write(typeof chunk === "string" ? Buffer.from(chunk) : chunk);
          }
        }
        output.end();
      })().catch((error: unknown) => {
        // A failure the agent reported arrives through onEnd; anything else is the source's.
        if (!output.failed) {
          link.cancel();
          finish(error);
        }
      });
    });
  }

  /** Opens a guest file for reading; resolves with its size and mode once it is open. */
  async readFile(path: string, options: CallOptions = {}): Promise<ReadFileHandle> {
    const body = validate({ op: "readFile", path });
    options.signal?.throwIfAborted();
    return new Promise((resolve, reject) => {
      const id = this.allocId();
      const link = this.link(id);
      const channel = new InboundChannel((n) => link.grant(Channel.OUT, n), this.window);
      const stream = new Readable({ highWaterMark: STREAM_HWM, read: () => channel.pull() });
      channel.attach(stream);
      let opened = false;
      let ended = false;
      const end = (error: unknown) => {
        if (ended) return;
        ended = true;
        disarm();
        if (!error) return;
        if (opened) stream.destroy(error instanceof Error ? error : new Error(String(error)));
        else reject(error);
      };
      const disarm = guard(options, `Cannot read "${path}"`, (e) => {
        link.cancel();
        end(e);
      });
      this.open(id, body, {
        op: "readFile",
        onEvent: (ev) => {
          if (ev.event !== "file") return;
          opened = true;
          resolve({ size: ev.size, mode: ev.mode, stream });
        },
        onData: (ch, data, fin) => {
          if (ch !== Channel.OUT) return;
          channel.push(data);
          if (fin) channel.end();
        },
        onEnd: (_result, error) => end(error),
      });
    });
  }

  /** A byte stream to a TCP port inside the guest; end() half-closes it. */
  async forward(port: number, options: CallOptions & { host?: string } = {}): Promise<Duplex> {
    const body = validate({ op: "forward", port, ...(options.host ? { host: options.host } : {}) });
    options.signal?.throwIfAborted();
    return new Promise((resolve, reject) => {
      const id = this.allocId();
      const link = this.link(id);
      const inbound = new InboundChannel((n) => link.grant(Channel.OUT, n), this.window);
      const outbound = new OutboundChannel(link, this.window);
      let connected = false;
      let ended = false;
      const duplex = new Duplex({
        readableHighWaterMark: STREAM_HWM,
        writableHighWaterMark: STREAM_HWM,
        read: () => inbound.pull(),
        write: (chunk: Buffer, _enc, cb) => outbound.write(chunk).then(() => cb(), cb),
        final: (cb) => {
          outbound.end();
          cb();
        },
        destroy: (error, cb) => {
          if (!ended) {
            ended = true;
            link.cancel();
          }
          outbound.fail(error ?? new Error("forward closed"));
          cb(error);
        },
      });
      inbound.attach(duplex);
      const disarm = guard(options, `Cannot connect to port ${port} in the guest`, (e) => {
        if (connected) return;
        ended = true;
        link.cancel();
        reject(e);
      });
      this.open(id, body, {
        op: "forward",
        onEvent: (ev) => {
          if (ev.event !== "connected") return;
          connected = true;
          disarm();
          resolve(duplex);
        },
        onData: (ch, data, fin) => {
          if (ch !== Channel.OUT) return;
          inbound.push(data);
          if (fin) inbound.end();
        },
        onWindow: (ch, n) => ch === Channel.IN && outbound.addCredit(n),
        onEnd: (_result, error) => {
          ended = true;
          disarm();
          if (!error) {
            outbound.close();
            return;
          }
          outbound.fail(error);
          if (connected) duplex.destroy(error);
          else reject(error);
        },
      });
    });
  }

  /** Round trip to the agent; also reports the guest's clocks. */
  async ping(options: CallOptions = {}): Promise<PingResultInfo> {
    const t0 = performance.now();
    const r = await this.call({ op: "ping" }, PingResult, options);
    return { rttMs: performance.now() - t0, ...r };
  }

  /** Sets the guest clock (after a snapshot restore). Not applied by a test-mode agent. */
  async setTime(timeMs: number = Date.now(), options: CallOptions = {}): Promise<{ applied: boolean }> {
    return this.call({ op: "setTime", timeMs: Math.round(timeMs) }, SetTimeResult, options);
  }

  /** Mixes host randomness into the guest's RNG (after a snapshot restore). */
  async reseed(bytes: Uint8Array = randomBytes(64), options: CallOptions = {}): Promise<{ bytes: number; credited: boolean }> {
    return this.call({ op: "reseed", data: Buffer.from(bytes).toString("base64") }, ReseedResult, options);
  }

  async sync(options: CallOptions = {}): Promise<void> {
    await this.call({ op: "sync" }, EmptyResult, options);
  }

  /**
   * Stops the guest. "reboot" (the default) ends the VM because the VMM runs with -no-reboot;
   * "poweroff" is for VMMs that implement power-off. Resolves once the agent has acknowledged.
   */
  async shutdown(options: CallOptions & { action?: "reboot" | "poweroff" } = {}): Promise<void> {
    await this.call({ op: "shutdown", ...(options.action ? { action: options.action } : {}) }, EmptyResult, options);
  }

  /** Closes the connection; pending calls reject with AgentUnavailableError. */
  async close(): Promise<void> {
    this.fail(new AgentUnavailableError("The connection to the guest agent was closed by the client", { hint: AGENT_GONE_HINT }));
    await this.closed;
  }

  // ---------------------------------------------------------------- plumbing

  private async call<T>(request: AgentRequest, schema: z.ZodType<T>, options: CallOptions = {}): Promise<T> {
    const body = validate(request);
    options.signal?.throwIfAborted();
    return new Promise<T>((resolve, reject) => {
      const id = this.allocId();
      const disarm = guard(options, `Guest agent ${request.op}`, (e) => {
        this.link(id).cancel();
        reject(e);
      });
      this.open(id, body, {
        op: request.op,
        onEnd: (result, error) => {
          disarm();
          if (error) reject(error);
          else {
            const parsed = schema.safeParse(result);
            if (parsed.success) resolve(parsed.data);
            else reject(this.violation(`${request.op} result`, parsed.error));
          }
        },
      });
    });
  }

  private allocId(): number {
    if (this.failure) throw this.failure;
    for (;;) {
      const id = this.nextId;
      this.nextId = this.nextId >= MAX_STREAM_ID ? 1 : this.nextId + 1;
      if (!this.streams.has(id)) return id;
    }
  }

  private open(id: number, body: string, sink: StreamSink): void {
    if (this.failure) throw this.failure;
    this.streams.set(id, sink);
    this.write(encodeFrame(FrameType.OPEN, id, body));
  }

  /** Sends for stream id only while that stream is still the one we opened. */
  private link(id: number): StreamLink {
    let sink: StreamSink | undefined;
    const live = () => {
      sink ??= this.streams.get(id);
      return sink !== undefined && this.streams.get(id) === sink;
    };
    return {
      id,
      window: this.window,
      control: (message: AgentControl) => {
        if (live()) this.write(encodeFrame(FrameType.CONTROL, id, JSON.stringify(message)));
      },
      grant: (channel, n) => {
        if (!live()) return;
        const p = Buffer.allocUnsafe(4);
        p.writeUInt32BE(n);
        this.write(encodeFrame(FrameType.WINDOW, id, p, dataFlags(channel)));
      },
      cancel: () => {
        if (!live()) return;
        // Keep the id reserved until the agent confirms, so it is not reused too early.
        this.streams.set(id, { op: sink!.op, onEnd: () => {} });
        this.write(encodeFrame(FrameType.CANCEL, id));
      },
      sendData: (chunk, fin) => {
        if (!live()) return true;
        return this.write(encodeFrame(FrameType.DATA, id, chunk, dataFlags(Channel.IN, fin)));
      },
      waitDrain: () => this.waitDrain(),
    };
  }

  private write(frame: Buffer): boolean {
    if (this.failure) return true;
    const ok = this.socket.write(frame);
    if (!ok) this.needDrain = true;
    return ok;
  }

  private waitDrain(): Promise<void> {
    if (this.failure) return Promise.reject(this.failure);
    if (!this.needDrain) return Promise.resolve();
    return new Promise((resolve, reject) => this.drainWaiters.push({ resolve, reject }));
  }

  private onBytes(chunk: Buffer): void {
    if (this.failure) return;
    try {
      this.decoder.push(chunk, (f) => this.onFrame(f));
    } catch (error) {
      this.fail(
        error instanceof SmolError ? error : new AgentUnavailableError(`The guest agent broke the protocol: ${String(error)}`, {
          hint: AGENT_GONE_HINT,
          cause: error,
        }),
      );
    }
  }

  private json(f: Frame): unknown {
    try {
      return JSON.parse(f.payload.toString("utf8"));
    } catch (error) {
      throw new AgentUnavailableError(`The guest agent sent invalid JSON in a frame of type ${f.type}`, { cause: error });
    }
  }

  private violation(what: string, error: z.ZodError): AgentUnavailableError {
    return new AgentUnavailableError(`The guest agent sent an invalid ${what}: ${error.issues[0]?.message}`, {
      hint: "the guest agent and this smolvm disagree on the protocol: rebuild the image",
      cause: error,
    });
  }

  private onFrame(f: Frame): void {
    if (this.failure) return;
    if (this.helloWaiter) {
      if (f.type !== FrameType.HELLO || f.streamId !== 0) return; // stale output of an old session
      const parsed = AgentHello.safeParse(this.json(f));
      if (!parsed.success || parsed.data.nonce !== this.helloWaiter.nonce) return;
      const waiter = this.helloWaiter;
      this.helloWaiter = undefined;
      if (parsed.data.protocol !== PROTOCOL) {
        waiter.reject(
          new AgentUnavailableError(`The guest agent speaks protocol ${parsed.data.protocol}, this smolvm ${PROTOCOL}`, {
            hint: "rebuild the sandbox image with this smolvm's agent",
          }),
        );
        return;
      }
      this.hello = parsed.data;
      this.window = parsed.data.limits.initialWindow;
      waiter.resolve();
      return;
    }
    if (f.streamId === 0) {
      if (f.type !== FrameType.ERROR) return;
      const parsed = AgentErrorPayload.safeParse(this.json(f));
      if (!parsed.success) throw this.violation("ERROR", parsed.error);
      if (parsed.data.code === "BAD_FRAME") {
        this.fail(new AgentUnavailableError(`The guest agent rejected a frame: ${parsed.data.message}`, { hint: AGENT_GONE_HINT }));
        return;
      }
      this.options.onAgentError?.(parsed.data);
      return;
    }
    const sink = this.streams.get(f.streamId);
    if (!sink) return;
    switch (f.type) {
      case FrameType.DATA:
        sink.onData?.(f.flags & CHANNEL_MASK, f.payload, (f.flags & FLAG_FIN) !== 0);
        return;
      case FrameType.WINDOW:
        if (f.payload.length === 4) sink.onWindow?.(f.flags & CHANNEL_MASK, f.payload.readUInt32BE(0));
        return;
      case FrameType.EVENT: {
        const parsed = AgentEvent.safeParse(this.json(f));
        if (!parsed.success) throw this.violation("EVENT", parsed.error);
        sink.onEvent?.(parsed.data);
        return;
      }
      case FrameType.RESULT: {
        const result = this.json(f);
        this.streams.delete(f.streamId);
        sink.onEnd(result, undefined);
        return;
      }
      case FrameType.ERROR: {
        const parsed = AgentErrorPayload.safeParse(this.json(f));
        if (!parsed.success) throw this.violation("ERROR", parsed.error);
        this.streams.delete(f.streamId);
        sink.onEnd(undefined, agentError(parsed.data, sink.op));
        return;
      }
    }
  }

  private fail(error: SmolError): void {
    if (this.failure) return;
    this.failure = error;
    this.helloWaiter?.reject(error);
    this.helloWaiter = undefined;
    const sinks = [...this.streams.values()];
    this.streams.clear();
    for (const sink of sinks) sink.onEnd(undefined, error);
    for (const w of this.drainWaiters.splice(0)) w.reject(error);
    this.socket.destroy();
    this.resolveClosed(error);
  }
}
