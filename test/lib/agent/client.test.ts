import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { createServer, connect, type AddressInfo } from "node:net";
import { AgentClient } from "../../../lib/agent/client.ts";
import { encodeFrame, FrameType, MAX_PAYLOAD } from "../../../lib/agent/frame.ts";
import { AgentUnavailableError } from "../../../lib/errors.ts";
import { startTestAgent, type TestAgent } from "../../helpers/agent.ts";

let agent: TestAgent;

beforeAll(async () => {
  agent = await startTestAgent();
}, 60_000);

afterAll(async () => {
  await agent?.stop();
});

describe("AgentClient", () => {
  test("HELLO reports version, capabilities, limits and boot time", async () => {
    const client = await agent.connect();
    expect(client.hello).toMatchObject({
      protocol: 1,
      agentVersion: "0.1.0",
      pid1: false,
      limits: { maxFrame: MAX_PAYLOAD, initialWindow: 262144, maxStreams: 1024 },
    });
    expect(client.hello.capabilities).toEqual(
      expect.arrayContaining(["exec", "pty", "files", "env", "forward", "time", "reseed", "sync", "shutdown"]),
    );
    expect(client.hello.bootTimeMs).toBeGreaterThan(0);
    await client.close();
  });

  test("ping measures a round trip and reports the guest clocks", async () => {
    const client = await agent.connect();
    const p = await client.ping();
    expect(p.rttMs).toBeGreaterThan(0);
    expect(Math.abs(p.timeMs - Date.now())).toBeLessThan(5000);
    await client.close();
  });

  test("a test-mode agent never touches the host clock or entropy accounting", async () => {
    const client = await agent.connect();
    expect(await client.setTime(Date.now())).toEqual({ applied: false });
    expect(await client.reseed(new Uint8Array(32).fill(7))).toEqual({ bytes: 32, credited: false, reseeded: false });
    await client.sync();
    await client.close();
  });

  test("every pending call rejects with AGENT_UNAVAILABLE when the connection drops", async () => {
    const socket = await agent.connectRaw();
    const client = await AgentClient.connect(socket);
    const running = client.run("sleep 30");
    const streaming = client.exec({ argv: ["sleep", "30"] });
    const handle = await streaming;
    await new Promise((r) => setTimeout(r, 50));
    socket.destroy();
    const err = await running.catch((e) => e);
    expect(err).toBeInstanceOf(AgentUnavailableError);
    expect(err.code).toBe("AGENT_UNAVAILABLE");
    expect(err.hint).toBeTruthy();
    await expect(handle.wait()).rejects.toBeInstanceOf(AgentUnavailableError);
    await expect(client.ping()).rejects.toBeInstanceOf(AgentUnavailableError);
    expect(client.isClosed).toBe(true);
  });

  test("connecting to something that never answers HELLO fails within the deadline", async () => {
    const silent = createServer(() => {});
    await new Promise<void>((resolve) => silent.listen(0, "127.0.0.1", resolve));
    try {
      const socket = connect((silent.address() as AddressInfo).port, "127.0.0.1");
      const t0 = Date.now();
      const err = await AgentClient.connect(socket, { timeoutMs: 200 }).catch((e) => e);
      expect(err).toBeInstanceOf(AgentUnavailableError);
      expect(Date.now() - t0).toBeLessThan(2000);
      expect(socket.destroyed).toBe(true);
    } finally {
      silent.close();
    }
  });

  test("a call whose signal is already aborted rejects at once with the reason", async () => {
    const client = await agent.connect();
    const abort = new AbortController();
    abort.abort(new Error("before start"));
    await expect(client.ping({ signal: abort.signal })).rejects.toThrow("before start");
    await expect(client.run("true", { signal: abort.signal })).rejects.toThrow("before start");
    expect((await client.ping()).rttMs).toBeGreaterThan(0); // the connection is unharmed
    await client.close();
  });

  test("a host that reconnects mid-frame resynchronises with the pad and its nonce", async () => {
    const hunting = await startTestAgent(["--hunt"]);
    try {
      const socket = await hunting.connectRaw();
      socket.write(encodeFrame(FrameType.HELLO, 0, '{"protocol":1,"nonce":"old-host"}'));
      socket.write(encodeFrame(FrameType.OPEN, 1, '{"op":"exec","argv":["sleep","30"],"stdin":true}'));
      // The old host dies halfway through a big DATA frame...
      socket.write(encodeFrame(FrameType.DATA, 1, Buffer.alloc(MAX_PAYLOAD, 1)).subarray(0, 5000));
      await new Promise((r) => setTimeout(r, 100));
      // ...and the new one reuses the byte stream.
      const client = await AgentClient.connect(socket, { resync: true, nonce: "new-host", timeoutMs: 5000 });
      expect(client.hello.nonce).toBe("new-host");
      expect((await client.run("echo in sync")).stdout).toBe("in sync\n");
      await client.close();
    } finally {
      await hunting.stop();
    }
  });

  test("shutdown is acknowledged before the agent goes away", async () => {
    const doomed = await startTestAgent();
    try {
      const client = await doomed.connect();
      await client.shutdown();
      await client.closed;
      expect(client.isClosed).toBe(true);
      const end = Date.now() + 3000;
      while (doomed.alive() && Date.now() < end) await new Promise((r) => setTimeout(r, 10));
      expect(doomed.alive()).toBe(false);
    } finally {
      await doomed.stop();
    }
  });

  test("invalid requests are refused locally", async () => {
    const client = await agent.connect();
    await expect(client.exec({})).rejects.toMatchObject({ code: "INVALID_INPUT" });
    await expect(client.forward(70000)).rejects.toMatchObject({ code: "INVALID_INPUT" });
    await client.close();
  });
});
