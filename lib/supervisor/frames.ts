/**
 * The supervisor's view of agent protocol frames (guest-agent/PROTOCOL.md): it reads whole frames
 * from a socket and writes them back out with another stream id. The codec itself is the agent
 * client's; this module only adapts it to the relay's needs.
 */
import type { Socket } from "node:net";
import { FrameDecoder, encodeFrame, FrameType, type Frame } from "../agent/frame.ts";

export { FrameType, type Frame };

/** Calls `onFrame` for every complete frame read from `socket`; `onError` on a framing error. */
export function readFrames(
  socket: Socket,
  onFrame: (frame: Frame) => void,
  onError: (error: Error) => void,
  initial: Buffer = Buffer.alloc(0),
): void {
  const decoder = new FrameDecoder();
  const feed = (chunk: Buffer) => {
    let frames: Frame[];
    try {
      frames = decoder.push(chunk);
    } catch (error) {
      onError(error as Error);
      return;
    }
    for (const frame of frames) onFrame(frame);
  };
  if (initial.length > 0) feed(initial);
  socket.on("data", feed);
}

export function writeFrame(socket: Socket, frame: Frame): boolean {
  if (socket.destroyed) return false;
  return socket.write(encodeFrame(frame));
}

export function jsonPayload(frame: Frame): unknown {
  return JSON.parse(Buffer.from(frame.payload).toString("utf8"));
}

export function jsonFrame(type: number, streamId: number, body: unknown): Frame {
  return { type, flags: 0, streamId, payload: Buffer.from(JSON.stringify(body)) };
}
