/**
 * Many clients, one agent connection. Each client (an SDK or CLI process on the supervisor's
 * socket, or one of the supervisor's own in-process owners: port forwards, SSH set-up, the
 * shutdown) numbers its streams freely; the relay
 * gives every stream an id of its own on the agent connection and rewrites ids both ways.
 * DATA and WINDOW pass through untouched otherwise, so flow control stays end to end between
 * client and agent and the supervisor never buffers more than the windows allow.
 */
import { encodeFrame } from "../agent/frame.ts";
import { forwardFrame, FrameType, type Frame, type FrameSink } from "./frames.ts";

/** Something that owns streams on the agent connection and receives their frames. */
export interface StreamOwner {
  /** A frame from the agent for the owner's stream `streamId` (its header still has the agent's id). */
  deliver(frame: Frame, streamId: number): void;
  /** The stream ended without an answer from the agent (the agent connection is gone). */
  fail(streamId: number, code: string, message: string): void;
}

interface Route {
  owner: StreamOwner;
  ownerStreamId: number;
}

export class Relay {
  private nextId = 1;
  private readonly routes = new Map<number, Route>();
  /** owner → (owner's stream id → agent stream id) */
  private readonly byOwner = new Map<StreamOwner, Map<number, number>>();

  /** When the last stream ended (or the relay began). */
  private quietSince = performance.now();

  constructor(private readonly agent: FrameSink) {}

  /** Milliseconds since the last stream ended, or 0 while any is open. */
  idleMs(): number {
    return this.routes.size > 0 ? 0 : performance.now() - this.quietSince;
  }

  /** A frame from the agent: route it to whoever opened its stream. */
  fromAgent(frame: Frame): void {
    if (frame.streamId === 0) return; // connection-level errors concern the supervisor's own session
    const route = this.routes.get(frame.streamId);
    if (route === undefined) return;
    if (frame.type === FrameType.RESULT || frame.type === FrameType.ERROR) {
      this.routes.delete(frame.streamId);
      this.byOwner.get(route.owner)?.delete(route.ownerStreamId);
      this.quietSince = performance.now();
    }
    route.owner.deliver(frame, route.ownerStreamId);
  }

  isLive(owner: StreamOwner, ownerStreamId: number): boolean {
    return this.byOwner.get(owner)?.has(ownerStreamId) ?? false;
  }

  /** Opens a stream for `owner`: the OPEN frame goes to the agent under a fresh id. */
  open(owner: StreamOwner, frame: Frame): void {
    if (this.agent.destroyed) {
      owner.fail(frame.streamId, "AGENT_UNAVAILABLE", "the guest agent connection is gone");
      return;
    }
    let ids = this.byOwner.get(owner);
    if (ids === undefined) this.byOwner.set(owner, (ids = new Map()));
    const agentId = this.allocate();
    ids.set(frame.streamId, agentId);
    this.routes.set(agentId, { owner, ownerStreamId: frame.streamId });
    forwardFrame(this.agent, frame, agentId);
  }

  /** DATA, WINDOW, CONTROL or CANCEL on an open stream; dropped if the stream has ended. */
  forward(owner: StreamOwner, frame: Frame): void {
    const agentId = this.byOwner.get(owner)?.get(frame.streamId);
    if (agentId === undefined) return;
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
    const dead: StreamOwner = { deliver: () => {}, fail: () => {} };
    for (const agentId of ids.values()) {
      const route = this.routes.get(agentId);
      if (route !== undefined) route.owner = dead;
      if (!this.agent.destroyed) this.agent.write(encodeFrame(FrameType.CANCEL, agentId));
    }
  }

  /** Every owner's streams end at once (the agent connection is gone). */
  failAll(code: string, message: string): void {
    for (const [, route] of this.routes) route.owner.fail(route.ownerStreamId, code, message);
    this.routes.clear();
    this.byOwner.clear();
    this.quietSince = performance.now();
  }

  private allocate(): number {
    for (;;) {
      const id = this.nextId;
      this.nextId = this.nextId >= 0x7fff_ffff ? 1 : this.nextId + 1;
      if (!this.routes.has(id)) return id;
    }
  }
}
