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
import type { Duplex, Readable } from "node:stream";
import type { z } from "../zod.ts";
import { AgentUnavailableError, fromWire, InvalidInputError, isErrorCode, SmolError } from "../errors.ts";
import { versionInfo } from "../version.ts";
import { randomBytes } from "../util/random.ts";
import { pidAlive } from "../host/pids.ts";
import { printable } from "../util/printable.ts";
import { agentError, AGENT_GONE_HINT, checkedMessage, connectionLost, frameJson, invalidMessage, protocolViolation, supervisorLost } from "./_errors.ts";
import { collect, runSpec } from "./collect.ts";
import { ExecProcess, type StreamLink, type StreamSink } from "./_exec.ts";
import type { StreamHost } from "./_transfers.ts";
import { guard, HOST_DEADLINE_GRACE_MS, validate } from "./_util.ts";
import { Channel, CHANNEL_MASK, dataFlags, encodeFrame, FLAG_FIN, FrameType, INITIAL_WINDOW, type Frame } from "./frame.ts";
import {
  AgentErrorPayload, AgentEvent, AgentRequest, EmptyResult, EnvResult, IdentityResult, PingResult, ReseedResult, SetTimeResult, ShutdownResult,
  type AgentControl, type AgentHello,
} from "./messages.ts";
import { greet } from "./session.ts";
import { SUPERVISOR_OPS, type SupervisorOp, type SupervisorRequest, type SupervisorResult } from "./supervisor-messages.ts";
import type {
  AgentConnectOptions,
  AgentEnv,
  AgentIdentity,
  AgentPing,
  AgentRunOptions,
  AgentRunResult,
  AgentWriteOptions,
  ByteStream,
  CallOptions,
  ExecHandle,
  ExecSpec,
  FileStream,
} from "./types.ts";

const MAX_STREAM_ID = 0x7fffffff;

/**
 * One open stream: who consumes its frames, and how many bytes the agent may still send on its
 * output channels (1 and 2) before this side grants more. The agent is held to that credit:
 * bytes beyond it would be host memory nobody agreed to hold.
 */
interface OpenStream {
  sink: StreamSink;
  credit: [number, number, number];
}

export class AgentClient {
  /** What the agent said about itself (versions, capabilities, limits, boot time) and, through a supervisor, the sandbox's state. */
  hello!: AgentHello;
  readonly env: AgentEnv;
  /** Resolves (never rejects) once the connection is gone, with the reason. */
  readonly closed: Promise<SmolError>;

  private readonly streams = new Map<number, OpenStream>();
  private nextId = 1;
  private failure: SmolError | undefined;
  private needDrain = false;
  private drainWaiters: Array<{ resolve: () => void; reject: (e: unknown) => void }> = [];
  private resolveClosed!: (e: SmolError) => void;
  /** The protocol's default until the peer's HELLO says otherwise. */
  private window = INITIAL_WINDOW;
  /** Why a supervisor said it is hanging up (an ERROR on stream 0 before its end), if it said. */
  private lastWords: SmolError | undefined;
  /** The connection as the transfers in _transfers.ts (loaded on first use) see it. */
  private readonly host: StreamHost;

  private constructor(
    private readonly socket: ByteStream,
    private readonly options: AgentConnectOptions<AgentClient>,
  ) {
    const self = this;
    this.closed = new Promise((resolve) => (this.resolveClosed = resolve));
    this.host = {
      get window() {
        return self.window;
      },
      allocId: () => this.allocId(),
      link: (id) => this.link(id),
      open: (id, body, sink) => this.open(id, body, sink),
    };
    this.env = {
      set: (vars, o) => this.call({ op: "env.set", vars }, EnvResult, o).then((r) => r.vars),
      unset: (names, o) => this.call({ op: "env.unset", names }, EnvResult, o).then((r) => r.vars),
      list: (o) => this.call({ op: "env.list" }, EnvResult, o).then((r) => r.vars),
    };
    socket.on("drain", () => {
      this.needDrain = false;
      for (const w of this.drainWaiters.splice(0)) w.resolve();
    });
    socket.on("error", (err: Error) => this.lost(err.message, err));
    socket.on("end", () => this.lost("it closed the connection"));
    socket.on("close", () => this.lost("the connection closed"));
  }

  /**
   * The connection ended. A supervisor that went without a word is usually a process that
   * exited, whose socket closes a moment before the system says it is gone: that moment (50 ms
   * at most) is waited for, so the reason given is the true one.
   */
  private lost(why: string, cause?: unknown): void {
    if (this.failure !== undefined) return; // closed by this side, or failed already
    const supervisor = this.hello?.supervisor;
    if (this.lastWords !== undefined || supervisor === undefined || !pidAlive(supervisor.pid)) {
      return this.fail(this.lostBecause(why, cause));
    }
    let waited = 0;
    const look = () => {
      if (this.failure !== undefined) return;
      if (pidAlive(supervisor.pid) && (waited += 5) < 50) return void setTimeout(look, 5);
      this.fail(this.lostBecause(why, cause));
    };
    setTimeout(look, 5);
  }

  /**
   * Opens a session on a connected byte stream (lib/agent/session.ts): resolves once the agent,
   * or the supervisor in front of it, has answered HELLO; rejects with the refusal it sent instead.
   */
  static async connect(socket: ByteStream, options: AgentConnectOptions<AgentClient> = {}): Promise<AgentClient> {
    const client = new AgentClient(socket, options);
    try {
      const greeting = greet(socket, {
        client: `smolvm/${versionInfo().version}`,
        ...(options.nonce === undefined ? {} : { nonce: options.nonce }),
        ...(options.resync === undefined ? {} : { resync: options.resync }),
        ...(options.timeMs === undefined ? {} : { timeMs: options.timeMs }),
        ...(options.supervised === true ? { supervised: true } : {}),
        timeoutMs: options.timeoutMs ?? 10_000,
        ...(options.signal === undefined ? {} : { signal: options.signal }),
        // Taken before the frames read with it are handled: their credit and whether they were checked depend on it.
        onGreeted: (hello) => {
          client.hello = hello;
          client.adoptWindow(hello.limits.initialWindow);
        },
        onFrame: (frame) => client.onFrame(frame),
        onProtocolError: (error) => client.fail(error instanceof SmolError ? error : new AgentUnavailableError(`The guest agent broke the protocol: ${String(error)}`, {
          hint: AGENT_GONE_HINT,
          cause: error,
        })),
      });
      // The HELLO is written: what `first` opens now rides right behind it.
      options.first?.(client);
      client.hello = await greeting;
    } catch (error) {
      client.fail(error instanceof SmolError ? error : connectionLost(String(error), error));
      throw error;
    }
    return client;
  }

  /**
   * The credit window the peer announced. Streams opened behind the HELLO assumed the protocol's
   * default (256 KiB); what they may still receive is set to the announced one.
   */
  private adoptWindow(announced: number): void {
    const assumed = this.window;
    this.window = announced;
    if (announced === assumed) return;
    for (const stream of this.streams.values()) {
      stream.credit[Channel.OUT] += announced - assumed;
      stream.credit[Channel.ERR] += announced - assumed;
    }
  }

  /** True once the connection is gone. */
  get isClosed(): boolean {
    return this.failure !== undefined;
  }

  // ---------------------------------------------------------------- operations

  /** Starts a command; resolves once the process exists (its pid is known). */
  async exec(spec: ExecSpec): Promise<ExecHandle> {
    // Behind the HELLO, stdin's credit would be a guess: such a command waits for the answer.
    if (this.hello === undefined && spec.stdin) throw new InvalidInputError("A command with stdin cannot be sent before the HELLO is answered");
    const pty = spec.pty === true ? {} : spec.pty || undefined;
    const body = this.encode({
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
    const proc = new ExecProcess(this.link(id), {
      answersChecked: () => this.answersChecked,
      stdin: !!spec.stdin,
      pty: !!pty,
      ...(spec.onStdout === undefined ? {} : { onStdout: spec.onStdout }),
      ...(spec.onStderr === undefined ? {} : { onStderr: spec.onStderr }),
      ...(spec.timeoutMs === undefined ? {} : { hostDeadlineMs: spec.timeoutMs + HOST_DEADLINE_GRACE_MS, timeoutMs: spec.timeoutMs }),
    });
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
  run(command: string | string[], options: AgentRunOptions & { encoding: "buffer" }): Promise<AgentRunResult<Buffer>>;
  run(command: string | string[], options?: AgentRunOptions): Promise<AgentRunResult<string>>;
  async run(command: string | string[], options: AgentRunOptions = {}): Promise<AgentRunResult<string | Buffer>> {
    return collect(await this.exec(runSpec(command, options)), options);
  }

  /** Writes a file atomically (temp file + rename in the guest). */
  writeFile(
    path: string,
    data: string | Uint8Array | Readable | AsyncIterable<Uint8Array>,
    options: AgentWriteOptions = {},
  ): Promise<{ size: number }> {
    return import("./_transfers.ts").then((transfers) => transfers.writeFile(this.host, path, data, options));
  }

  /** Opens a guest file for reading; resolves with its size and mode once it is open. */
  readFile(path: string, options: CallOptions = {}): Promise<FileStream> {
    return import("./_transfers.ts").then((transfers) => transfers.readFile(this.host, path, options));
  }

  /** A byte stream to a TCP port inside the guest; end() half-closes it. */
  forward(port: number, options: CallOptions & { host?: string } = {}): Promise<Duplex> {
    return import("./_transfers.ts").then((transfers) => transfers.forward(this.host, port, options));
  }

  /** Round trip to the agent; also reports the guest's clocks. */
  async ping(options: CallOptions = {}): Promise<AgentPing> {
    const t0 = performance.now();
    const r = await this.call({ op: "ping" }, PingResult, options);
    return { rttMs: performance.now() - t0, ...r };
  }

  /** Sets the guest clock (after a snapshot restore). Not applied by a test-mode agent. */
  async setTime(timeMs: number = Date.now(), options: CallOptions = {}): Promise<{ applied: boolean }> {
    return this.call({ op: "setTime", timeMs: Math.round(timeMs) }, SetTimeResult, options);
  }

  /** Mixes host randomness into the guest's RNG (after a snapshot restore). */
  async reseed(bytes: Uint8Array = randomBytes(64), options: CallOptions = {}): Promise<{ bytes: number; credited: boolean; reseeded?: boolean }> {
    return this.call({ op: "reseed", data: Buffer.from(bytes).toString("base64") }, ReseedResult, options);
  }

  /**
   * Makes a restored guest a machine of its own: the clock, the RNG (rekeyed from `seed`), the
   * hostname, the boot id and eth0 (taken down and configured again when `ip` is given).
   */
  async identity(request: AgentIdentity, options: CallOptions = {}): Promise<{ applied: boolean; bootId?: string; reseeded?: boolean }> {
    const { seed = randomBytes(64), timeMs = Date.now(), ...rest } = request;
    return this.call({ op: "identity", timeMs: Math.round(timeMs), seed: Buffer.from(seed).toString("base64"), ...rest }, IdentityResult, options);
  }

  async sync(options: CallOptions = {}): Promise<void> {
    await this.call({ op: "sync" }, EmptyResult, options);
  }

  /**
   * Shuts the guest down. By default the agent answers first and then goes down; with
   * `answer: "synced"` it answers once every other process is gone and `/` is synced and
   * read-only (`synced: true`), after which the VMM may be ended at once.
   */
  async shutdown(options: CallOptions & { action?: "reboot" | "poweroff"; answer?: "before" | "synced" } = {}): Promise<{ synced: boolean }> {
    const request = { op: "shutdown" as const, ...(options.action ? { action: options.action } : {}), ...(options.answer ? { answer: options.answer } : {}) };
    const result = await this.call(request, ShutdownResult, options);
    return { synced: result.synced === true };
  }

  /**
   * A `supervisor.*` operation (lib/agent/supervisor-messages.ts), answered by the sandbox's
   * supervisor itself, which checks the request against the operation's schema (INVALID_INPUT
   * naming the field); its answer is checked here unless this client trusts it (`supervised`).
   */
  async supervisor<Op extends SupervisorOp>(op: Op, request: SupervisorRequest<Op>, options: CallOptions = {}): Promise<SupervisorResult<Op>> {
    return this.request(op, JSON.stringify({ ...request, op }), SUPERVISOR_OPS[op].result as unknown as z.ZodMiniType<SupervisorResult<Op>>, options);
  }

  /** Closes the connection; pending calls reject with AgentUnavailableError. */
  async close(): Promise<void> {
    this.fail(new AgentUnavailableError("The connection to the guest agent was closed by the client", { hint: AGENT_GONE_HINT }));
    await this.closed;
  }

  // ---------------------------------------------------------------- plumbing

  private async call<T>(request: AgentRequest, schema: z.ZodMiniType<T>, options: CallOptions = {}): Promise<T> {
    return this.request(request.op, this.encode(request), schema, options);
  }

  /** Whether the agent's answers reach this client checked already: by a supervisor that says it checks them. */
  private get answersChecked(): boolean {
    return this.options.supervised === true && this.hello?.supervisor?.checks === true;
  }

  /** A request's OPEN payload: checked here, unless the supervisor checks it (`supervised`). */
  private encode(request: AgentRequest): string {
    return this.options.supervised === true ? JSON.stringify(request) : validate(request);
  }

  /** One request stream whose RESULT is checked against `schema`. */
  private async request<T>(op: string, body: string, schema: z.ZodMiniType<T>, options: CallOptions): Promise<T> {
    options.signal?.throwIfAborted();
    return new Promise<T>((resolve, reject) => {
      const id = this.allocId();
      const disarm = guard(options, `${op.startsWith("supervisor.") ? "Supervisor" : "Guest agent"} ${op}`, (e) => {
        this.link(id).cancel();
        reject(e);
      });
      this.open(id, body, {
        op,
        onEnd: (result, error) => {
          disarm();
          if (error) reject(error);
          else if (this.answersChecked) resolve(result as T);
          else {
            const parsed = schema.safeParse(result);
            if (parsed.success) resolve(parsed.data);
            else reject(invalidMessage(`${op} result`, parsed.error));
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
    this.streams.set(id, { sink, credit: [0, this.window, this.window] });
    this.write(encodeFrame(FrameType.OPEN, id, body));
  }

  /** Sends for stream id only while that stream is still the one we opened. */
  private link(id: number): StreamLink {
    let stream: OpenStream | undefined;
    const live = () => {
      stream ??= this.streams.get(id);
      return stream !== undefined && this.streams.get(id) === stream;
    };
    return {
      id,
      window: this.window,
      control: (message: AgentControl) => {
        if (live()) this.write(encodeFrame(FrameType.CONTROL, id, JSON.stringify(message)));
      },
      grant: (channel, n) => {
        if (!live()) return;
        if (channel === Channel.OUT || channel === Channel.ERR) stream!.credit[channel] += n;
        const p = Buffer.allocUnsafe(4);
        p.writeUInt32BE(n);
        this.write(encodeFrame(FrameType.WINDOW, id, p, dataFlags(channel)));
      },
      cancel: () => {
        if (!live()) return;
        // Keep the id reserved until the agent confirms, so it is not reused too early; what it
        // still sends is dropped, within the credit it had.
        this.streams.set(id, { sink: { op: stream!.sink.op, onEnd: () => {} }, credit: stream!.credit });
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

  private onFrame(f: Frame): void {
    if (this.failure) return;
    if (f.streamId === 0) {
      if (f.type !== FrameType.ERROR) return;
      const payload = checkedMessage(AgentErrorPayload, frameJson(f), "ERROR", this.answersChecked);
      if (payload.code === "BAD_FRAME") {
        this.fail(new AgentUnavailableError(`The guest agent rejected a frame: ${printable(payload.message, 500)}`, { hint: AGENT_GONE_HINT }));
        return;
      }
      // A supervisor says why before it hangs up (the sandbox stopped, its VM exited, its agent
      // was cut off): its own error, which the hang-up then reports.
      if (this.hello?.supervisor !== undefined && payload.stream === undefined && isErrorCode(payload.code)) {
        this.lastWords = fromWire(payload);
        return;
      }
      this.options.onAgentError?.(payload);
      return;
    }
    const stream = this.streams.get(f.streamId);
    if (!stream) return;
    const sink = stream.sink;
    switch (f.type) {
      case FrameType.DATA: {
        const channel = f.flags & CHANNEL_MASK;
        if (channel !== Channel.OUT && channel !== Channel.ERR) {
          throw protocolViolation(`it sent data on channel ${channel} of stream ${f.streamId}, which only the host writes`);
        }
        stream.credit[channel] -= f.payload.length;
        if (stream.credit[channel] < 0) {
          throw protocolViolation(`it sent ${-stream.credit[channel]} bytes beyond its credit on stream ${f.streamId}`);
        }
        sink.onData?.(channel, f.payload, (f.flags & FLAG_FIN) !== 0);
        return;
      }
      case FrameType.WINDOW:
        if (f.payload.length !== 4 || (f.flags & CHANNEL_MASK) !== Channel.IN) {
          throw protocolViolation(`it sent a malformed WINDOW on stream ${f.streamId}`);
        }
        sink.onWindow?.(Channel.IN, f.payload.readUInt32BE(0));
        return;
      case FrameType.EVENT: {
        sink.onEvent?.(checkedMessage(AgentEvent, frameJson(f), "EVENT", this.answersChecked));
        return;
      }
      case FrameType.RESULT: {
        const result = frameJson(f);
        this.streams.delete(f.streamId);
        sink.onEnd(result, undefined);
        return;
      }
      case FrameType.ERROR: {
        const payload = checkedMessage(AgentErrorPayload, frameJson(f), "ERROR", this.answersChecked);
        this.streams.delete(f.streamId);
        sink.onEnd(undefined, agentError(payload, sink.op));
        return;
      }
      default:
        throw protocolViolation(`it sent a frame of type 0x${f.type.toString(16)} on stream ${f.streamId}, which only the host sends`);
    }
  }

  /** The connection ended: what the supervisor said before it went, or what is known about why. */
  private lostBecause(why: string, cause?: unknown): SmolError {
    if (this.lastWords !== undefined) return this.lastWords;
    const supervisor = this.hello?.supervisor;
    if (supervisor === undefined) return connectionLost(why === "it closed the connection" ? "the agent closed the connection" : why, cause);
    return supervisorLost(supervisor.sandbox, supervisor.pid, pidAlive(supervisor.pid) ? why : "it exited", cause);
  }

  private fail(error: SmolError): void {
    if (this.failure) return;
    this.failure = error;
    const streams = [...this.streams.values()];
    this.streams.clear();
    for (const stream of streams) stream.sink.onEnd(undefined, error);
    for (const w of this.drainWaiters.splice(0)) w.reject(error);
    this.socket.destroy();
    this.resolveClosed(error);
  }
}
