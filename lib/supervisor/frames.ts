/**
 * The supervisor's view of agent protocol frames (guest-agent/PROTOCOL.md): frames forwarded
 * with another stream id without re-encoding, and small JSON frames of its own.
 */
import type { Duplex } from "node:stream";
import { encodeFrame, FrameType, HEADER_SIZE, rewriteStreamId, type Frame } from "../agent/frame.ts";

export { FrameType, type Frame };

/** Where frames are written: a client's socket or pipe, or the agent connection. */
export type FrameSink = Pick<Duplex, "write" | "destroyed">;

/** Writes `frame` under `streamId` (rewriting its header in place; frames are forwarded once). */
export function forwardFrame(sink: FrameSink, frame: Frame, streamId: number): void {
  if (!sink.destroyed) sink.write(rewriteStreamId(frame.raw, streamId));
}

export function sendJson(sink: FrameSink, type: number, streamId: number, body: unknown): void {
  if (!sink.destroyed) sink.write(encodeFrame(type, streamId, JSON.stringify(body)));
}

/** A JSON frame of the supervisor's own, shaped like one read from a socket, for the relay. */
export function jsonFrame(type: number, streamId: number, body: unknown): Frame {
  const raw = encodeFrame(type, streamId, JSON.stringify(body));
  return { type, flags: 0, streamId, payload: raw.subarray(HEADER_SIZE), raw };
}

export function jsonPayload(frame: Frame): unknown {
  return JSON.parse(frame.payload.toString("utf8"));
}
