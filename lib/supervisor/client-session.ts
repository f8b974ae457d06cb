/**
 * One client of the supervisor: an SDK or CLI process on its socket, or one of the supervisor's
 * own in-process owners on a pipe (local-client.ts). The client speaks the agent protocol
 * unchanged. The supervisor answers its HELLO itself, and only once the sandbox is ready (or
 * with an ERROR carrying the reason the boot failed); it answers `supervisor.*` operations itself
 * and relays every other stream to the agent.
 */
import type { Duplex } from "node:stream";
import { FrameDecoder } from "../agent/frame.ts";
import { HostHello, requestProblem, type AgentHello } from "../agent/messages.ts";
import { isSupervisorOp, SUPERVISOR_OPS, type SupervisorOp } from "../agent/supervisor-messages.ts";
import { toSmolError, type SmolError } from "../errors.ts";
import { forwardFrame, FrameType, jsonPayload, sendJson, type Frame } from "./frames.ts";
import type { Relay, StreamOwner } from "./relay.ts";

/**
 * What the supervisor keeps queued for one client that does not read. Credit bounds a stream to
 * 256 KiB per channel, so this only trips for a client with very many streams that all stalled.
 */
const MAX_CLIENT_BACKLOG = 64 * 1024 * 1024;

/**
 * What a client may send behind its HELLO before the answer (pipelined: `smolvm exec` sends its
 * command with the HELLO, so the guest starts it one round trip and a client's HELLO handling
 * sooner). A request or two; past these bounds the client is cut off.
 */
const MAX_EARLY_FRAMES = 64;
const MAX_EARLY_BYTES = 1024 * 1024;

/** The handler of one `supervisor.*` operation, given its schema-checked request. */
export type SupervisorOpHandler = (request: Record<string, unknown>) => Promise<unknown>;

export interface SessionContext {
  /** The relay to the agent; none until the agent answered (a client cannot open streams before). */
  relay: Relay | undefined;
  /**
   * The HELLO answer (the agent's HELLO and the supervisor's own part), once the sandbox is
   * ready; rejects with why it cannot be used (its boot failed, it is stopping).
   */
  hello(): Promise<AgentHello>;
  ops: Record<SupervisorOp, SupervisorOpHandler>;
}

export class ClientSession implements StreamOwner {
  readonly own: boolean;
  private greeted = false;
  /** A HELLO is being answered; what comes meanwhile waits in `early`. */
  private greeting = false;
  private early: Frame[] = [];
  private earlyBytes = 0;
  /** Streams answered by the supervisor itself, so an id stays unique per client. */
  private readonly localStreams = new Set<number>();

  constructor(
    private readonly socket: Duplex,
    private readonly context: SessionContext,
    onClose: () => void = () => {},
    options: { own?: boolean } = {},
  ) {
    this.own = options.own === true;
    (socket as Duplex & { setNoDelay?: (on: boolean) => void }).setNoDelay?.(true);
    const decoder = new FrameDecoder();
    socket.on("data", (chunk: Buffer) =>
      decoder.push(chunk, (frame) => this.onFrame(frame), () => {
        sendJson(socket, FrameType.ERROR, 0, { code: "BAD_FRAME", message: "malformed frame from client" });
        socket.end();
      }),
    );
    socket.on("error", () => {});
    let closed = false;
    const close = () => {
      if (closed) return;
      closed = true;
      context.relay?.release(this);
      if (!socket.destroyed) socket.destroy();
      onClose();
    };
    socket.on("end", close);
    socket.on("close", close);
  }

  deliver(frame: Frame, streamId: number): void {
    forwardFrame(this.socket, frame, streamId);
    // A client that stopped reading while its streams have credit would have the supervisor
    // hold everything the guest sends it: past a bound, it is let go (its streams cancelled).
    if (this.socket.writableLength > MAX_CLIENT_BACKLOG) this.socket.destroy();
  }

  fail(streamId: number, code: string, message: string, hint?: string): void {
    this.error(streamId, code, message, hint);
  }

  private error(streamId: number, code: string, message: string, hint?: string): void {
    sendJson(this.socket, FrameType.ERROR, streamId, { code, message, ...(hint === undefined ? {} : { hint }), ...(streamId === 0 ? {} : { stream: streamId }) });
  }

  private onFrame(frame: Frame): void {
    if (this.greeting) return this.hold(frame);
    if (frame.type === FrameType.HELLO) return this.onHello(frame);
    if (!this.greeted) return this.error(frame.type === FrameType.OPEN ? frame.streamId : 0, "HELLO_REQUIRED", "send HELLO first");
    switch (frame.type) {
      case FrameType.OPEN:
        return this.open(frame);
      case FrameType.DATA:
      case FrameType.WINDOW:
      case FrameType.CONTROL:
      case FrameType.CANCEL:
        return this.context.relay?.forward(this, frame);
      default:
        this.error(frame.streamId, "UNKNOWN_TYPE", `frame type 0x${frame.type.toString(16)} is not known here`);
    }
  }

  /** Answered once the sandbox is ready: HELLO, or an ERROR with the reason and a hang-up. */
  private onHello(frame: Frame): void {
    let hello;
    try {
      hello = HostHello.safeParse(jsonPayload(frame));
    } catch {
      return this.error(0, "BAD_REQUEST", "HELLO payload is not JSON");
    }
    if (!hello.success) return this.error(0, "BAD_REQUEST", `HELLO is not valid: ${hello.error.issues[0]?.message}`);
    const nonce = hello.data.nonce;
    // A second HELLO starts a new session on the same connection: its old streams end.
    if (this.greeted) this.context.relay?.release(this);
    this.greeted = false;
    this.greeting = true;
    this.context.hello().then(
      (answer) => {
        this.greeting = false;
        this.greeted = true;
        sendJson(this.socket, FrameType.HELLO, 0, { ...answer, nonce });
        this.replay(answer);
      },
      (thrown: unknown) => {
        this.greeting = false;
        this.dropEarly();
        const error: SmolError = toSmolError(thrown);
        sendJson(this.socket, FrameType.ERROR, 0, error.toJSON());
        this.socket.end();
      },
    );
  }

  /** A frame sent behind a HELLO that is still being answered, kept for after the answer. */
  private hold(frame: Frame): void {
    this.earlyBytes += frame.payload.length;
    if (this.early.length >= MAX_EARLY_FRAMES || this.earlyBytes > MAX_EARLY_BYTES) {
      this.dropEarly();
      sendJson(this.socket, FrameType.ERROR, 0, { code: "BAD_REQUEST", message: `more than ${MAX_EARLY_FRAMES} frames or ${MAX_EARLY_BYTES} bytes sent before the HELLO was answered` });
      this.socket.end();
      return;
    }
    this.early.push(frame);
  }

  private dropEarly(): void {
    this.early = [];
    this.earlyBytes = 0;
  }

  /**
   * The frames that came behind the HELLO, now that it is answered. A client refuses to use a
   * sandbox the answer says is paused or frozen (and says why itself): what it sent before it knew
   * must not run either, so those requests are refused here instead of reaching a guest that would
   * start them on its resume.
   */
  private replay(answer: AgentHello): void {
    const early = this.early;
    this.dropEarly();
    const supervisor = answer.supervisor;
    const held = supervisor?.frozen ?? (supervisor !== undefined && supervisor.state !== "running"
      ? { code: "NOT_RUNNING", message: `the sandbox is ${supervisor.state}` }
      : undefined);
    for (const frame of early) {
      if (this.socket.destroyed) return;
      if (held === undefined) this.onFrame(frame);
      else if (frame.type === FrameType.OPEN) this.error(frame.streamId, held.code, `${held.message}: a request sent with the HELLO is not run`);
    }
  }

  private open(frame: Frame): void {
    const id = frame.streamId;
    if (id === 0) return this.error(0, "BAD_REQUEST", "OPEN on stream 0");
    if (this.localStreams.has(id) || this.context.relay?.isLive(this, id) === true) {
      return this.error(0, "STREAM_IN_USE", `stream ${id} is live`);
    }
    let request: Record<string, unknown>;
    try {
      request = jsonPayload(frame) as Record<string, unknown>;
      if (typeof request !== "object" || request === null || typeof request.op !== "string") throw new Error("no op");
    } catch {
      return this.error(id, "BAD_REQUEST", "OPEN payload must be a JSON object with an op");
    }
    const op = request.op as string;
    if (!op.startsWith("supervisor.")) {
      // Checked here for every client, so that what reaches the agent is always well formed and
      // a client of this supervisor need not check its own requests (AgentConnectOptions.supervised).
      const problem = requestProblem(request);
      if (problem !== undefined) return this.error(id, "INVALID_INPUT", problem);
      if (this.context.relay === undefined) return this.error(id, "AGENT_UNAVAILABLE", "the guest agent is not connected");
      return this.context.relay.open(this, frame, op);
    }
    if (!isSupervisorOp(op)) return this.error(id, "UNKNOWN_OP", `unknown supervisor operation "${op}"`);
    const checked = SUPERVISOR_OPS[op].request.safeParse(request);
    if (!checked.success) {
      const issue = checked.error.issues[0];
      return this.error(id, "INVALID_INPUT", `Invalid ${op} request: ${issue?.path.join(".") || "request"}: ${issue?.message}`);
    }
    this.localStreams.add(id);
    this.context.ops[op](checked.data as Record<string, unknown>).then(
      (result) => {
        this.localStreams.delete(id);
        sendJson(this.socket, FrameType.RESULT, id, result ?? {});
      },
      (thrown) => {
        this.localStreams.delete(id);
        const error = toSmolError(thrown);
        this.error(id, error.code, error.message, error.hint);
      },
    );
  }
}
