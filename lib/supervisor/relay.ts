/**
 * Many clients, one agent connection. Each client (an SDK or CLI process on the supervisor's
 * socket, or one of the supervisor's own in-process owners: port forwards, SSH set-up, the
 * shutdown) numbers its streams freely; the relay
 * gives every stream an id of its own on the agent connection and rewrites ids both ways.
 * DATA and WINDOW pass through untouched otherwise, so flow control stays end to end between
 * client and agent and the supervisor never buffers more than the windows allow.
 *
 * The relay also holds the agent to the protocol, since it is the first to see what a guest
 * sends: data only on the output channels and only within the credit its client granted, only
 * the frame types an agent may send, a bounded number of events per stream (events carry no
 * credit). A guest that breaks any of these is reported to `onViolation` and nothing more of it
 * is passed on: its bytes would be host memory nobody agreed to hold. Every EVENT, RESULT and
 * ERROR is checked against its schema too (checkAnswer), so that the supervisor's clients can
 * take what it passes on as checked: one that fails ends its own stream with why (the guest goes
 * on, as it would for a client that checked the message itself).
 */
import { CHANNEL_MASK, encodeFrame } from "../agent/frame.ts";
import { protocolViolation } from "../agent/_errors.ts";
import { checkAnswer, type AgentAnswer } from "../agent/messages.ts";
import { forwardFrame, FrameType, type Frame, type FrameSink } from "./frames.ts";

/** Something that owns streams on the agent connection and receives their frames. */
export interface StreamOwner {
  /** A frame from the agent for the owner's stream `streamId` (its header still has the agent's id). */
  deliver(frame: Frame, streamId: number): void;
  /** The stream ended without an answer from the agent (the agent connection is gone, or it stopped answering). */
  fail(streamId: number, code: string, message: string, hint?: string): void;
  /**
   * The supervisor's own (port forwards, SSH set-up): they keep deadlines of their own, so a
   * silent agent's streams are not ended for them (abandonAll).
   */
  readonly own?: boolean;
}

/** Events a stream may carry (an exec has one, a file read one, a forward one). */
const MAX_EVENTS_PER_STREAM = 16;

interface Route {
  owner: StreamOwner;
  ownerStreamId: number;
  /** The stream's operation, which says what its RESULT must be. */
  op: string;
  /** Bytes the agent may still send on channels 1 and 2 (index 0 unused). */
  credit: [number, number, number];
  events: number;
}

export interface RelayOptions {
  /** The credit window every stream starts with (the agent's HELLO `limits.initialWindow`). */
  window: number;
  /** The agent broke the protocol; `what` says how. Called once; the relay passes nothing on after. */
  onViolation(what: string): void;
}

const DEAD: StreamOwner = { deliver: () => {}, fail: () => {} };

export class Relay {
  private nextId = 1;
  private readonly routes = new Map<number, Route>();
  /** owner → (owner's stream id → agent stream id) */
  private readonly byOwner = new Map<StreamOwner, Map<number, number>>();
  private violated = false;
  /** Why the agent connection is unusable, once it is (failAll): later streams fail with it too. */
  private gone: { code: string; message: string; hint?: string } | undefined;

  /** When the last stream ended (or the relay began). */
  private quietSince = performance.now();
  /** When the agent last sent anything at all. */
  private heardAt = performance.now();

  constructor(
    private readonly agent: FrameSink,
    private readonly options: RelayOptions,
  ) {}

  /** Milliseconds since the last stream ended, or 0 while any is open. */
  idleMs(): number {
    return this.routes.size > 0 ? 0 : performance.now() - this.quietSince;
  }

  /** Milliseconds since the agent last sent a frame. */
  silentMs(): number {
    return performance.now() - this.heardAt;
  }

  /** Streams someone still waits on (not those of owners that left), `except`'s not counted. */
  waiting(except?: StreamOwner): number {
    let n = 0;
    for (const route of this.routes.values()) if (route.owner !== DEAD && route.owner !== except) n++;
    return n;
  }

  /** A frame from the agent: route it to whoever opened its stream. */
  fromAgent(frame: Frame): void {
    if (this.violated) return;
    this.heardAt = performance.now();
    if (frame.streamId === 0) return; // connection-level errors concern the supervisor's own session
    const route = this.routes.get(frame.streamId);
    const wrong = this.check(frame, route);
    if (wrong !== undefined) {
      this.violated = true;
      this.options.onViolation(wrong);
      return;
    }
    if (route === undefined) return;
    const ends = frame.type === FrameType.RESULT || frame.type === FrameType.ERROR;
    const invalid = route.owner === DEAD ? undefined : this.invalidMessage(frame, route.op);
    if (ends) {
      this.routes.delete(frame.streamId);
      this.byOwner.get(route.owner)?.delete(route.ownerStreamId);
      this.quietSince = performance.now();
    }
    if (invalid === undefined) return route.owner.deliver(frame, route.ownerStreamId);
    const error = protocolViolation(invalid);
    const owner = route.owner;
    if (!ends) {
      this.byOwner.get(owner)?.delete(route.ownerStreamId);
      this.orphan(frame.streamId);
    }
    owner.fail(route.ownerStreamId, error.code, error.message, error.hint);
  }

  /** What is wrong with a frame from the agent, or undefined when it keeps to the protocol. */
  private check(frame: Frame, route: Route | undefined): string | undefined {
    // A stream's route stays until the agent ends it (a cancelled one too), so nothing may come
    // for one without: the agent made it up or spoke after its own end.
    if (route === undefined) return `it sent a frame of type 0x${frame.type.toString(16)} on stream ${frame.streamId} that is not open`;
    const channel = frame.flags & CHANNEL_MASK;
    switch (frame.type) {
      case FrameType.DATA:
        if (channel !== 1 && channel !== 2) return `it sent data on channel ${channel} of stream ${frame.streamId}, which only the host writes`;
        route.credit[channel] -= frame.payload.length;
        if (route.credit[channel] < 0) return `it sent ${-route.credit[channel]} bytes beyond its credit on stream ${frame.streamId}`;
        return undefined;
      case FrameType.WINDOW:
        return frame.payload.length === 4 && channel === 0 ? undefined : `it sent a malformed WINDOW on stream ${frame.streamId}`;
      case FrameType.EVENT:
        if (++route.events > MAX_EVENTS_PER_STREAM) return `it sent more than ${MAX_EVENTS_PER_STREAM} events on stream ${frame.streamId}`;
        return undefined;
      case FrameType.RESULT:
      case FrameType.ERROR:
        return undefined;
      default:
        return `it sent a frame of type 0x${frame.type.toString(16)} on stream ${frame.streamId}, which only the host sends`;
    }
  }

  /** What is wrong with an EVENT, RESULT or ERROR of a stream of `op`, or undefined. */
  private invalidMessage(frame: Frame, op: string): string | undefined {
    const kind: AgentAnswer | undefined = frame.type === FrameType.EVENT ? "event" : frame.type === FrameType.RESULT ? "result"
      : frame.type === FrameType.ERROR ? "error" : undefined;
    if (kind === undefined) return undefined;
    let body: unknown;
    try {
      body = JSON.parse(frame.payload.toString("utf8"));
    } catch {
      return `its ${kind === "result" ? `${op} RESULT` : kind.toUpperCase()} is not JSON`;
    }
    const checked = checkAnswer(op, kind, body);
    return "problem" in checked ? checked.problem : undefined;
  }

  isLive(owner: StreamOwner, ownerStreamId: number): boolean {
    return this.byOwner.get(owner)?.has(ownerStreamId) ?? false;
  }

  /** Opens a stream of `op` for `owner`: the OPEN frame goes to the agent under a fresh id. */
  open(owner: StreamOwner, frame: Frame, op: string): void {
    if (this.gone !== undefined || this.agent.destroyed || this.violated) {
      const why = this.gone ?? { code: "AGENT_UNAVAILABLE", message: "the guest agent connection is gone" };
      owner.fail(frame.streamId, why.code, why.message, why.hint);
      return;
    }
    let ids = this.byOwner.get(owner);
    if (ids === undefined) this.byOwner.set(owner, (ids = new Map()));
    const agentId = this.allocate();
    ids.set(frame.streamId, agentId);
    const window = this.options.window;
    this.routes.set(agentId, { owner, ownerStreamId: frame.streamId, op, credit: [0, window, window], events: 0 });
    forwardFrame(this.agent, frame, agentId);
  }

  /** DATA, WINDOW, CONTROL or CANCEL on an open stream; dropped if the stream has ended. */
  forward(owner: StreamOwner, frame: Frame): void {
    const agentId = this.byOwner.get(owner)?.get(frame.streamId);
    if (agentId === undefined) return;
    if (frame.type === FrameType.WINDOW && frame.payload.length === 4) {
      const channel = frame.flags & CHANNEL_MASK;
      const route = this.routes.get(agentId);
      // The client's grant is the agent's new credit.
      if (route !== undefined && (channel === 1 || channel === 2)) route.credit[channel] += frame.payload.readUInt32BE(0);
    }
    forwardFrame(this.agent, frame, agentId);
  }

  /**
   * The owner is gone: cancel its live streams. Their routes stay until the agent ends them, so
   * an id is never reused while the agent still thinks it is live.
   */
  release(owner: StreamOwner): void {
    const ids = this.byOwner.get(owner);
    this.byOwner.delete(owner);
    if (ids === undefined) return;
    for (const agentId of ids.values()) this.orphan(agentId);
  }

  /**
   * Every live stream fails with `code` and `message` and is cancelled in the agent, whose
   * routes stay until it answers (the agent stopped answering: its streams must not hold their
   * callers, but it may come back).
   */
  abandonAll(code: string, message: string, hint?: string, except?: StreamOwner): void {
    for (const [agentId, route] of this.routes) {
      if (route.owner === DEAD || route.owner === except || route.owner.own === true) continue;
      route.owner.fail(route.ownerStreamId, code, message, hint);
      this.byOwner.get(route.owner)?.delete(route.ownerStreamId);
      this.orphan(agentId);
    }
  }

  /** Every owner's streams end at once (the agent connection is gone). */
  failAll(code: string, message: string, hint?: string): void {
    this.gone ??= { code, message, ...(hint === undefined ? {} : { hint }) };
    for (const [, route] of this.routes) route.owner.fail(route.ownerStreamId, code, message, hint);
    this.routes.clear();
    this.byOwner.clear();
    this.quietSince = performance.now();
  }

  private orphan(agentId: number): void {
    const route = this.routes.get(agentId);
    if (route === undefined) return;
    route.owner = DEAD;
    // What it may still send is dropped, but within the credit it has; none will be granted.
    if (!this.agent.destroyed) this.agent.write(encodeFrame(FrameType.CANCEL, agentId));
  }

  private allocate(): number {
    for (;;) {
      const id = this.nextId;
      this.nextId = this.nextId >= 0x7fff_ffff ? 1 : this.nextId + 1;
      if (!this.routes.has(id)) return id;
    }
  }
}
