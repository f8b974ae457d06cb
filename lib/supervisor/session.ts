/**
 * One client connection to the supervisor. The client speaks the agent protocol unchanged; the
 * supervisor answers HELLO itself (with the agent's capabilities) and `supervisor.*` operations
 * itself, and relays every other stream to the agent.
 */
import type { Socket } from "node:net";
import { toSmolError } from "../errors.ts";
import type { AgentHello } from "../agent/messages.ts";
import { forwardFrame, FrameType, jsonPayload, readFrames, sendJson, type Frame } from "./frames.ts";
import type { Relay, StreamOwner } from "./relay.ts";

export type SupervisorOp = (request: Record<string, unknown>) => Promise<unknown>;

export interface SessionContext {
  relay: Relay;
  hello: AgentHello;
  supervisorInfo: Record<string, unknown>;
  ops: Record<string, SupervisorOp>;
}

export class ClientSession implements StreamOwner {
  private greeted = false;
  /** Streams answered by the supervisor itself, so an id stays unique per client. */
  private readonly localStreams = new Set<number>();

  constructor(
    private readonly socket: Socket,
    private readonly context: SessionContext,
    onClose: () => void,
  ) {
    socket.setNoDelay?.(true);
    readFrames(socket, (frame) => this.onFrame(frame), () => {
      sendJson(socket, FrameType.ERROR, 0, { code: "BAD_FRAME", message: "malformed frame from client" });
      socket.end();
    });
    socket.on("error", () => {});
    socket.on("close", () => {
      context.relay.release(this);
      onClose();
    });
  }

  deliver(frame: Frame, streamId: number): void {
    forwardFrame(this.socket, frame, streamId);
  }

  fail(streamId: number, code: string, message: string): void {
    this.error(streamId, code, message);
  }

  private error(streamId: number, code: string, message: string, hint?: string): void {
    sendJson(this.socket, FrameType.ERROR, streamId, { code, message, ...(hint === undefined ? {} : { hint }), ...(streamId === 0 ? {} : { stream: streamId }) });
  }

  private onFrame(frame: Frame): void {
    if (frame.type === FrameType.HELLO) {
      let nonce: unknown;
      try {
        nonce = (jsonPayload(frame) as { nonce?: unknown }).nonce;
      } catch {
        this.error(0, "BAD_REQUEST", "HELLO payload is not JSON");
        return;
      }
      if (this.greeted) this.context.relay.release(this);
      this.greeted = true;
      sendJson(this.socket, FrameType.HELLO, 0, { ...this.context.hello, nonce, supervisor: this.context.supervisorInfo });
      return;
    }
    if (!this.greeted) {
      this.error(frame.streamId, "HELLO_REQUIRED", "send HELLO first");
      return;
    }
    switch (frame.type) {
      case FrameType.OPEN:
        this.open(frame);
        return;
      case FrameType.DATA:
      case FrameType.WINDOW:
      case FrameType.CONTROL:
      case FrameType.CANCEL:
        this.context.relay.forward(this, frame);
        return;
      default:
        this.error(frame.streamId, "UNKNOWN_TYPE", `frame type 0x${frame.type.toString(16)} is not known here`);
    }
  }

  private open(frame: Frame): void {
    const id = frame.streamId;
    if (id === 0) return this.error(0, "BAD_REQUEST", "OPEN on stream 0");
    if (this.localStreams.has(id) || this.context.relay.isLive(this, id)) {
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
      this.context.relay.open(this, frame);
      return;
    }
    const handler = this.context.ops[op];
    if (handler === undefined) return this.error(id, "UNKNOWN_OP", `unknown supervisor operation "${op}"`);
    this.localStreams.add(id);
    handler(request).then(
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
