/**
 * The supervisor's view of agent protocol frames (guest-agent/PROTOCOL.md): whole frames read
 * from a socket, forwarded with another stream id, and small JSON frames of its own.
 */
import type { Socket } from "node:net";
import { encodeFrame, FrameDecoder, FrameType, HEADER_SIZE, rewriteStreamId, type Frame } from "../agent/frame.ts";

export { FrameType, type Frame };

/** Calls `onFrame` for every complete frame read from `socket`; `onError` on a framing error. */
export function readFrames(
  socket: Socket,
  onFrame: (frame: Frame) => void,
  onError: (error: Error) => void,
  decoder: FrameDecoder = new FrameDecoder(),
): void {
  socket.on("data", (chunk: Buffer) => decoder.push(chunk, onFrame, onError));
}

/** Writes `frame` under `streamId` (rewriting its header in place; frames are forwarded once). */
export function forwardFrame(socket: Socket, frame: Frame, streamId: number): void {
  if (!socket.destroyed) socket.write(rewriteStreamId(frame.raw, streamId));
}

export function sendJson(socket: Socket, type: number, streamId: number, body: unknown): void {
  if (!socket.destroyed) socket.write(encodeFrame(type, streamId, JSON.stringify(body)));
}

/** A JSON frame of the supervisor's own, shaped like one read from a socket, for the relay. */
export function jsonFrame(type: number, streamId: number, body: unknown): Frame {
  const raw = encodeFrame(type, streamId, JSON.stringify(body));
  return { type, flags: 0, streamId, payload: raw.subarray(HEADER_SIZE), raw };
}

export function jsonPayload(frame: Frame): unknown {
  return JSON.parse(frame.payload.toString("utf8"));
}
