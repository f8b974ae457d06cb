import { afterAll, afterEach, beforeAll, describe, expect, test } from "bun:test";
import { randomBytes, randomInt } from "node:crypto";
import { mkdirSync, readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { encodeFrame, FrameType, HEADER_SIZE, MAX_PAYLOAD } from "../../lib/agent/frame.ts";
import { processesMatching, startTestAgent, waitUntil, type RawConnection, type TestAgent } from "../helpers/agent.ts";

let agent: TestAgent;
const open: RawConnection[] = [];

beforeAll(async () => {
  agent = await startTestAgent();
}, 60_000);

afterEach(() => {
  for (const c of open.splice(0)) c.destroy();
});

afterAll(async () => {
  if (agent && !agent.alive()) console.error(`agent died; its log:\n${agent.log()}`);
  await agent?.stop();
});

async function raw(hello = true): Promise<RawConnection> {
  const c = await agent.raw();
  open.push(c);
  if (hello) await c.hello();
  return c;
}

/** The agent is alive and a fresh client gets served. */
async function stillServing(): Promise<void> {
  expect(agent.alive()).toBe(true);
  const client = await agent.connect({ timeoutMs: 5000 });
  expect((await client.run("echo alive")).stdout).toBe("alive\n");
  await client.close();
}


describe("hostile input", () => {
  test("a frame truncated by a closing client is dropped", async () => {
    const c = await raw();
    c.write(encodeFrame(FrameType.OPEN, 1, '{"op":"exec","argv":["true"]}').subarray(0, 20));
    c.destroy();
    await stillServing();
  });

  test("an oversized length gets BAD_FRAME and the connection is closed", async () => {
    const c = await raw();
    const bad = encodeFrame(FrameType.DATA, 1);
    bad.writeUInt32BE(MAX_PAYLOAD + 1, 12);
    c.write(bad);
    expect((await c.error(0)).code).toBe("BAD_FRAME");
    expect(await c.waitClosed()).toBe(true);
    await stillServing();
  });

  test("a 4 GiB length claim is refused without allocating anything", async () => {
    const c = await raw();
    const bad = encodeFrame(FrameType.OPEN, 1);
    bad.writeUInt32BE(0xffffffff, 12);
    c.write(bad);
    expect((await c.error(0)).code).toBe("BAD_FRAME");
    await stillServing();
  });

  test("garbage bytes get BAD_FRAME", async () => {
    const c = await raw(false);
    c.write(randomBytes(1024 * 1024));
    expect((await c.error(0)).code).toBe("BAD_FRAME");
    expect(await c.waitClosed()).toBe(true);
    await stillServing();
  });

  test("unknown frame types, supervisor types and wrong-direction types are answered, and the session goes on", async () => {
    const c = await raw();
    c.send(0x42, 7, "whatever");
    expect(await c.error(0)).toMatchObject({ code: "UNKNOWN_TYPE", stream: 7 });
    c.send(0x80, 8, "supervisor only");
    expect(await c.error(0)).toMatchObject({ code: "UNKNOWN_TYPE", stream: 8 });
    c.send(FrameType.RESULT, 9, "{}");
    expect((await c.error(0)).code).toBe("BAD_REQUEST");
    c.send(FrameType.OPEN, 10, { op: "ping" });
    await c.next((f) => f.type === FrameType.RESULT && f.streamId === 10);
  });

  test("bad JSON, unknown ops and bad fields get per-stream errors", async () => {
    const c = await raw();
    c.send(FrameType.OPEN, 1, "{not json");
    expect((await c.error(1)).code).toBe("BAD_REQUEST");
    c.send(FrameType.OPEN, 2, { op: "format-the-disk" });
    expect((await c.error(2)).code).toBe("UNKNOWN_OP");
    c.send(FrameType.OPEN, 3, { op: "supervisor.status" });
    expect((await c.error(3)).code).toBe("UNKNOWN_OP");
    c.send(FrameType.OPEN, 4, { op: "exec", argv: "not an array" });
    expect((await c.error(4)).code).toBe("BAD_REQUEST");
    c.send(FrameType.OPEN, 5, { op: "exec", argv: ["a\u0000b"] });
    expect((await c.error(5)).code).toBe("BAD_REQUEST");
    c.send(FrameType.OPEN, 6, { op: "env.set", vars: { "A=B": "x" } });
    expect((await c.error(6)).code).toBe("BAD_REQUEST");
    c.send(FrameType.OPEN, 8, { op: "shutdown", answer: "whenever" });
    expect((await c.error(8)).message).toContain("shutdown answer must be");
    c.send(FrameType.OPEN, 7, "[".repeat(10_000));
    expect((await c.error(7)).code).toBe("BAD_REQUEST");
    c.send(FrameType.OPEN, 0, { op: "ping" });
    expect((await c.error(0)).code).toBe("BAD_REQUEST");
    c.send(FrameType.WINDOW, 1, "xx", 1);
    expect((await c.error(0)).code).toBe("BAD_REQUEST");
    c.send(FrameType.OPEN, 8, { op: "ping" });
    await c.next((f) => f.type === FrameType.RESULT && f.streamId === 8);
  });

  test("frames before HELLO are refused until it comes", async () => {
    const c = await raw(false);
    c.send(FrameType.OPEN, 1, { op: "ping" });
    expect((await c.error(1)).code).toBe("HELLO_REQUIRED");
    await c.hello();
    c.send(FrameType.OPEN, 2, { op: "ping" });
    await c.next((f) => f.type === FrameType.RESULT && f.streamId === 2);
  });

  test("reusing a live stream id is refused without disturbing the live stream", async () => {
    const c = await raw();
    c.send(FrameType.OPEN, 1, { op: "exec", argv: ["cat"], stdin: true });
    await c.next((f) => f.type === FrameType.EVENT && f.streamId === 1);
    c.send(FrameType.OPEN, 1, { op: "ping" });
    expect(await c.error(0)).toMatchObject({ code: "STREAM_IN_USE", stream: 1 });
    c.send(FrameType.DATA, 1, "still mine", 0);
    c.send(FrameType.DATA, 1, "", 0x80);
    const out = await c.next((f) => f.type === FrameType.DATA && f.streamId === 1 && f.payload.length > 0);
    expect(out.payload.toString()).toBe("still mine");
    await c.next((f) => f.type === FrameType.RESULT && f.streamId === 1);
  });

  test("sending beyond the granted window is a flow-control error for that stream only", async () => {
    const c = await raw();
    // sleep never reads stdin: after the pipe's 64 KiB nothing is consumed, so no credit returns.
    c.send(FrameType.OPEN, 1, { op: "exec", argv: ["sleep", "30"], stdin: true });
    await c.next((f) => f.type === FrameType.EVENT && f.streamId === 1);
    const chunk = Buffer.alloc(MAX_PAYLOAD);
    for (let i = 0; i < 8; i++) c.send(FrameType.DATA, 1, chunk);
    expect((await c.error(1)).code).toBe("FLOW_CONTROL");
    c.send(FrameType.OPEN, 2, { op: "ping" });
    await c.next((f) => f.type === FrameType.RESULT && f.streamId === 2);
  });

  test("a flood of 10 000 opens gets streams up to the limit and errors beyond; closing cleans up", async () => {
    const dir = join(agent.dir, "flood");
    mkdirSync(dir);
    const c = await raw();
    const batch: Buffer[] = [];
    for (let id = 1; id <= 10_000; id++) {
      batch.push(encodeFrame(FrameType.OPEN, id, JSON.stringify({ op: "writeFile", path: join(dir, `f${id}`) })));
    }
    c.write(Buffer.concat(batch));
    // writeFile streams stay open (waiting for data), so only the excess is answered.
    const excess = 10_000 - 1024;
    expect(await waitUntil(() => c.frames.filter((f) => f.type === FrameType.ERROR).length >= excess, 20_000)).toBe(true);
    const codes = new Set(c.frames.map((f) => JSON.parse(f.payload.toString()).code));
    expect([...codes]).toEqual(["TOO_MANY_STREAMS"]);
    expect(readdirSync(dir).length).toBe(1024); // the temporary files of the open streams
    c.destroy();
    expect(await waitUntil(() => readdirSync(dir).length === 0, 5000)).toBe(true);
    await stillServing();
  }, 60_000);

  test("a client that never reads cannot grow the agent or starve other clients", async () => {
    const c = await raw();
    c.socket.pause(); // stop reading: the kernel buffers fill, then the agent must hold back
    for (let id = 1; id <= 8; id++) c.send(FrameType.OPEN, id, { op: "exec", argv: ["yes", "smolvm"] });
    await new Promise((r) => setTimeout(r, 800));
    const rss = Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${agent.pid}/status`, "utf8"))![1]);
    expect(rss).toBeLessThan(32 * 1024);
    const other = await agent.connect();
    const t0 = performance.now();
    await other.ping();
    expect(performance.now() - t0).toBeLessThan(1000);
    await other.close();
    c.destroy();
    expect(await waitUntil(() => processesMatching("^yes smolvm$").length === 0, 5000)).toBe(true);
  }, 60_000);

  test("a client that disconnects mid-command leaves no process behind", async () => {
    const marker = `${3000000 + randomInt(1_000_000)}`;
    const c = await raw();
    c.send(FrameType.OPEN, 1, { op: "exec", shell: `sleep ${marker} & sleep ${marker}` });
    await c.next((f) => f.type === FrameType.EVENT);
    c.destroy();
    expect(await waitUntil(() => processesMatching(`sleep ${marker}`).length === 0, 5000)).toBe(true);
  });

  test("20 000 random frames with valid headers never take the agent down", async () => {
    const c = await raw();
    const types = [1, 2, 3, 4, 5, 6, 7, 0x10, 0x11, 0x00, 0x33, 0x80, 0xff];
    const parts: Buffer[] = [];
    for (let i = 0; i < 20_000; i++) {
      const type = types[randomInt(types.length)]!;
      const len = randomInt(4) === 0 ? randomInt(2000) : randomInt(40);
      const payload = type === FrameType.OPEN && randomInt(2) === 0
        ? Buffer.from(JSON.stringify({ op: ["ping", "env.list", "nope", "readFile", "forward"][randomInt(5)], path: "/nonexistent", port: randomInt(70000) }))
        : randomBytes(len);
      // Stay clear of real work (exec, writeFile): this is about parsing, not side effects.
      if (type === FrameType.OPEN && /exec|write|shutdown|set|reseed|sync/.test(payload.toString("latin1"))) continue;
      if (type === FrameType.HELLO) continue; // a re-HELLO is legal and would reset the session
      parts.push(encodeFrame(type, randomInt(50), payload, randomInt(256) & 0x83));
    }
    c.write(Buffer.concat(parts));
    c.send(FrameType.OPEN, 0x7ffffff0, { op: "ping" });
    await c.next((f) => f.type === FrameType.RESULT && f.streamId === 0x7ffffff0, 20_000);
    expect(HEADER_SIZE).toBe(16);
    await stillServing();
  }, 60_000);
});
