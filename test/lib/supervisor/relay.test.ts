import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import type { Socket } from "node:net";
import { encodeFrame, FrameDecoder } from "../../../lib/agent/frame.ts";
import { FrameType, jsonFrame, type Frame } from "../../../lib/supervisor/frames.ts";
import { Relay, type StreamOwner } from "../../../lib/supervisor/relay.ts";
import { agentRelay, type AgentRelay } from "./_relay.ts";

/** An agent connection that records what the relay writes to it. */
function fakeAgent(): { socket: Socket; written: Frame[] } {
  const written: Frame[] = [];
  const decoder = new FrameDecoder();
  const socket = { destroyed: false, write: (bytes: Uint8Array) => decoder.push(bytes, (f) => written.push(f)) } as unknown as Socket;
  return { socket, written };
}

function fromAgent(type: number, streamId: number, body: unknown = {}): Frame {
  const raw = encodeFrame(type, streamId, JSON.stringify(body));
  return { type, flags: 0, streamId, payload: raw.subarray(16), raw };
}

test("idleMs is 0 while a stream is open and counts from when the last one ended", async () => {
  const agent = fakeAgent();
  const relay = new Relay(agent.socket, { window: 262144, onViolation: () => {} });
  const delivered: number[] = [];
  const owner: StreamOwner = { deliver: (frame) => delivered.push(frame.type), fail: () => {} };
  await Bun.sleep(20);
  expect(relay.idleMs()).toBeGreaterThanOrEqual(15);

  relay.open(owner, jsonFrame(FrameType.OPEN, 7, { op: "sync" }), "sync");
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

describe("what the agent says on a stream is checked against its schema before it is passed on", () => {
  function relayWithOwner() {
    const agent = fakeAgent();
    const violations: string[] = [];
    const relay = new Relay(agent.socket, { window: 262144, onViolation: (what) => violations.push(what) });
    const delivered: Frame[] = [];
    const failed: Array<{ id: number; code: string; message: string }> = [];
    const owner: StreamOwner = { deliver: (frame) => delivered.push(frame), fail: (id, code, message) => failed.push({ id, code, message }) };
    const open = (id: number, op: string) => {
      relay.open(owner, jsonFrame(FrameType.OPEN, id, { op }), op);
      return agent.written.at(-1)!.streamId;
    };
    return { agent, relay, violations, delivered, failed, open };
  }

  test("a sound EVENT and RESULT pass; a RESULT of the wrong shape ends only its stream, with why", () => {
    const r = relayWithOwner();
    const exec = r.open(1, "exec");
    r.relay.fromAgent(fromAgent(FrameType.EVENT, exec, { event: "started", pid: 42 }));
    r.relay.fromAgent(fromAgent(FrameType.RESULT, exec, { exitCode: "zero", signal: null, timedOut: false, durationMs: 3 }));
    expect(r.delivered.map((f) => f.type)).toEqual([FrameType.EVENT]);
    expect(r.failed).toEqual([{ id: 1, code: "AGENT_UNAVAILABLE", message: expect.stringMatching(/exec RESULT is not valid \(exitCode: /) }]);
    expect(r.violations).toEqual([]);
    // The guest goes on: the next stream's sound answer comes through.
    const env = r.open(2, "env.list");
    r.relay.fromAgent(fromAgent(FrameType.RESULT, env, { vars: { A: "1" } }));
    expect(r.delivered.map((f) => f.type)).toEqual([FrameType.EVENT, FrameType.RESULT]);
  });

  test("an EVENT that is not one ends its stream and cancels it in the agent; a malformed ERROR ends its stream", () => {
    const r = relayWithOwner();
    const exec = r.open(1, "exec");
    r.relay.fromAgent(fromAgent(FrameType.EVENT, exec, { event: "exploded" }));
    expect(r.failed).toEqual([{ id: 1, code: "AGENT_UNAVAILABLE", message: expect.stringContaining("EVENT is not valid") }]);
    expect(r.agent.written.at(-1)).toMatchObject({ type: FrameType.CANCEL, streamId: exec });
    // What the agent still says on it goes nowhere.
    r.relay.fromAgent(fromAgent(FrameType.RESULT, exec, { exitCode: 0, signal: null, timedOut: false, durationMs: 1 }));
    expect(r.delivered).toEqual([]);
    const read = r.open(2, "readFile");
    r.relay.fromAgent(fromAgent(FrameType.ERROR, read, { code: 7 }));
    expect(r.failed.at(-1)).toEqual({ id: 2, code: "AGENT_UNAVAILABLE", message: expect.stringContaining("ERROR is not valid") });
    expect(r.violations).toEqual([]);
  });
});

describe("many clients over one agent connection (the native test agent)", () => {
  let setup: AgentRelay;
  beforeAll(async () => {
    setup = await agentRelay();
  }, 300_000);
  afterAll(() => setup?.stop());

  test("clients number their streams alike; the agent sees one id per stream, and answers reach the right client", async () => {
    const [a, b] = await Promise.all([setup.client(), setup.client()]);
    const before = setup.sentToAgent.length;
    // Both clients' first stream is id 1 on their side.
    const [ra, rb] = await Promise.all([a.run(["sh", "-c", "sleep 0.2; echo from-a"]), b.run(["sh", "-c", "echo from-b"])]);
    expect(ra.stdout).toBe("from-a\n");
    expect(rb.stdout).toBe("from-b\n");
    const opens = setup.sentToAgent.slice(before).filter((f) => f.type === FrameType.OPEN).map((f) => f.streamId);
    expect(opens).toHaveLength(2);
    expect(new Set(opens).size).toBe(2);
    await Promise.all([a.close(), b.close()]);
  });

  test("a client that goes away has its live streams cancelled in the agent; the others go on", async () => {
    const [leaving, staying] = await Promise.all([setup.client(), setup.client()]);
    const proc = await leaving.exec({ argv: ["sleep", "31.7"] });
    const running = staying.exec({ argv: ["sh", "-c", "sleep 0.3; echo still"] });
    const before = setup.sentToAgent.length;
    await leaving.close();
    await expect(proc.wait()).rejects.toMatchObject({ code: "AGENT_UNAVAILABLE" });
    const cancels = () => setup.sentToAgent.slice(before).filter((f) => f.type === FrameType.CANCEL);
    await waitFor(() => cancels().length === 1);
    const left = await staying.run(["sh", "-c", "for p in /proc/[0-9]*; do tr '\\0' ' ' < $p/cmdline 2>/dev/null; echo; done | grep -c '^sleep 31.7' || true"]);
    expect(left.stdout.trim()).toBe("0");
    const still = await running;
    let out = "";
    for await (const chunk of still.stdout) out += chunk;
    expect(out).toBe("still\n");
    await staying.close();
  });

  test("when the agent connection goes, every client's streams fail with AGENT_UNAVAILABLE and new ones are refused", async () => {
    const isolated = await agentRelay();
    try {
      const [a, b] = await Promise.all([isolated.client(), isolated.client()]);
      const pending = [a.run(["sleep", "31.8"]), b.run(["sleep", "31.8"])];
      await waitFor(() => isolated.sentToAgent.filter((f) => f.type === FrameType.OPEN).length === 2);
      isolated.link.destroy();
      for (const result of await Promise.allSettled(pending)) {
        expect(result.status).toBe("rejected");
        expect((result as PromiseRejectedResult).reason).toMatchObject({ code: "AGENT_UNAVAILABLE" });
      }
      await expect(a.run(["true"])).rejects.toMatchObject({ code: "AGENT_UNAVAILABLE" });
    } finally {
      await isolated.stop();
    }
  });
});

async function waitFor(check: () => boolean, timeoutMs = 5_000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > end) throw new Error("timed out");
    await Bun.sleep(10);
  }
}

describe("the agent held to the protocol", () => {
  function relayWith(window = 100): { relay: Relay; violations: string[]; delivered: number[]; owner: StreamOwner; agentId: () => number; agent: ReturnType<typeof fakeAgent> } {
    const agent = fakeAgent();
    const violations: string[] = [];
    const relay = new Relay(agent.socket, { window, onViolation: (what) => violations.push(what) });
    const delivered: number[] = [];
    const owner: StreamOwner = { deliver: (frame) => delivered.push(frame.type), fail: () => {} };
    relay.open(owner, jsonFrame(FrameType.OPEN, 7, { op: "exec", argv: ["yes"] }), "exec");
    return { relay, violations, delivered, owner, agentId: () => agent.written[0]!.streamId, agent };
  }
  const data = (stream: number, bytes: number, channel = 1): Frame => {
    const raw = encodeFrame(FrameType.DATA, stream, Buffer.alloc(bytes), channel);
    return { type: FrameType.DATA, flags: channel, streamId: stream, payload: raw.subarray(16), raw };
  };

  test("data within the window and the grants the client sent passes; a byte more is a violation, and nothing passes after", () => {
    const { relay, violations, delivered, owner, agentId } = relayWith(100);
    relay.fromAgent(data(agentId(), 100));
    expect(violations).toEqual([]);
    const grant = Buffer.alloc(4);
    grant.writeUInt32BE(50);
    const raw = encodeFrame(FrameType.WINDOW, 7, grant, 1);
    relay.forward(owner, { type: FrameType.WINDOW, flags: 1, streamId: 7, payload: raw.subarray(16), raw });
    relay.fromAgent(data(agentId(), 50));
    expect(violations).toEqual([]);
    relay.fromAgent(data(agentId(), 1));
    expect(violations).toEqual([`it sent 1 bytes beyond its credit on stream ${agentId()}`]);
    relay.fromAgent(fromAgent(FrameType.RESULT, agentId()));
    expect(delivered).toEqual([FrameType.DATA, FrameType.DATA]);
  });

  test("frames only a host sends, data on channel 0, a stream never opened and a seventeenth event are violations", () => {
    const cases: Array<[(id: number) => Frame, string]> = [
      [(id) => fromAgent(FrameType.OPEN, id), "it sent a frame of type 0x3 on stream ID, which only the host sends"],
      [(id) => data(id, 1, 0), "it sent data on channel 0 of stream ID, which only the host writes"],
      [(id) => data(id + 1000, 1), "it sent a frame of type 0x10 on stream ID+1000 that is not open"],
    ];
    for (const [frame, what] of cases) {
      const { relay, violations, agentId } = relayWith();
      relay.fromAgent(frame(agentId()));
      expect(violations).toEqual([what.replace("ID+1000", String(agentId() + 1000)).replace("ID", String(agentId()))]);
    }
    const { relay, violations, agentId } = relayWith();
    for (let i = 0; i < 17; i++) relay.fromAgent(fromAgent(FrameType.EVENT, agentId()));
    expect(violations).toEqual([`it sent more than 16 events on stream ${agentId()}`]);
  });
});
