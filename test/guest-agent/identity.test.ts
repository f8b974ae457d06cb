/**
 * The identity operation in test mode (the native agent on a Unix socket): requests are checked
 * field by field, and a test-mode agent applies nothing to the host it runs on. What it does as
 * PID 1 (clock, RNG, hostname, boot id, network) is proven in a real guest by pid1.test.ts and,
 * across restores, by test/e2e/snapshot.test.ts.
 */
import { afterAll, afterEach, beforeAll, expect, test } from "bun:test";
import { hostname } from "node:os";
import { FrameType } from "../../lib/agent/frame.ts";
import { startTestAgent, type RawConnection, type TestAgent } from "../helpers/agent.ts";

let agent: TestAgent;
const open: RawConnection[] = [];

beforeAll(async () => {
  agent = await startTestAgent();
}, 60_000);

afterEach(() => {
  for (const c of open.splice(0)) c.destroy();
});

afterAll(async () => {
  await agent?.stop();
});

async function ask(body: Record<string, unknown>): Promise<{ type: number; json: Record<string, unknown> }> {
  const c = await agent.raw();
  open.push(c);
  await c.hello();
  c.send(FrameType.OPEN, 7, body);
  const frame = await c.next((f) => f.streamId === 7 && (f.type === FrameType.RESULT || f.type === FrameType.ERROR));
  return { type: frame.type, json: JSON.parse(frame.payload.toString()) };
}

const seed = Buffer.alloc(32, 7).toString("base64");

test("a well-formed identity request is answered, and a test-mode agent changes nothing of its host", async () => {
  const client = await agent.connect({ timeoutMs: 5000 });
  try {
    expect(client.hello.capabilities).toContain("identity");
    const before = hostname();
    const result = await client.identity({ hostname: "elsewhere", ip: "10.9.9.9/24", gw: "10.9.9.1", dns: "10.9.9.2" });
    expect(result).toEqual({ applied: false });
    expect(hostname()).toBe(before);
  } finally {
    await client.close();
  }
});

test("identity refuses a missing clock, a short or malformed seed, and oversized fields", async () => {
  const bad: Record<string, unknown>[] = [
    { op: "identity", seed },
    { op: "identity", timeMs: Date.now() },
    { op: "identity", timeMs: Date.now(), seed: Buffer.alloc(8).toString("base64") },
    { op: "identity", timeMs: Date.now(), seed: "not base64 !" },
    { op: "identity", timeMs: Date.now(), seed: Buffer.alloc(5000).toString("base64") },
    { op: "identity", timeMs: -5, seed },
    { op: "identity", timeMs: Date.now(), seed, hostname: "x".repeat(64) },
    { op: "identity", timeMs: Date.now(), seed, hostname: "" },
    { op: "identity", timeMs: Date.now(), seed, hostname: 5 },
    { op: "identity", timeMs: Date.now(), seed, ip: "1".repeat(64) },
  ];
  for (const body of bad) {
    const answer = await ask(body);
    expect(answer.type).toBe(FrameType.ERROR);
    expect(answer.json.code).toBe("BAD_REQUEST");
  }
  // And it keeps serving.
  expect((await ask({ op: "identity", timeMs: Date.now(), seed })).json).toEqual({ applied: false });
});

test("reseed says whether the CRNG was rekeyed (never in test mode)", async () => {
  const client = await agent.connect({ timeoutMs: 5000 });
  try {
    expect(await client.reseed(new Uint8Array(32).fill(1))).toEqual({ bytes: 32, credited: false, reseeded: false });
  } finally {
    await client.close();
  }
});
