import { expect, test } from "bun:test";
import type { Socket } from "node:net";
import { encodeFrame, FrameDecoder } from "../../../lib/agent/frame.ts";
import { FrameType, jsonFrame, type Frame } from "../../../lib/supervisor/frames.ts";
import { Relay, type StreamOwner } from "../../../lib/supervisor/relay.ts";

/** An agent connection that records what the relay writes to it. */
function fakeAgent(): { socket: Socket; written: Frame[] } {
  const written: Frame[] = [];
  const decoder = new FrameDecoder();
  const socket = { destroyed: false, write: (bytes: Uint8Array) => decoder.push(bytes, (f) => written.push(f)) } as unknown as Socket;
  return { socket, written };
}

function fromAgent(type: number, streamId: number): Frame {
  const raw = encodeFrame(type, streamId, "{}");
  return { type, flags: 0, streamId, payload: raw.subarray(16), raw };
}

test("idleMs is 0 while a stream is open and counts from when the last one ended", async () => {
  const agent = fakeAgent();
  const relay = new Relay(agent.socket);
  const delivered: number[] = [];
  const owner: StreamOwner = { deliver: (frame) => delivered.push(frame.type), fail: () => {} };
  await Bun.sleep(20);
  expect(relay.idleMs()).toBeGreaterThanOrEqual(15);

  relay.open(owner, jsonFrame(FrameType.OPEN, 7, { op: "ping" }));
  const agentId = agent.written[0]!.streamId;
  expect(relay.idleMs()).toBe(0);
  await Bun.sleep(20);
  expect(relay.idleMs()).toBe(0);

  relay.fromAgent(fromAgent(FrameType.RESULT, agentId));
  expect(delivered).toEqual([FrameType.RESULT]);
  expect(relay.idleMs()).toBeLessThan(15);
  await Bun.sleep(20);
  expect(relay.idleMs()).toBeGreaterThanOrEqual(15);
});
