/**
 * One client's session with the supervisor (client-session.ts), spoken to in raw frames: its
 * HELLO is held until the sandbox is ready and refused with the boot's error otherwise, every
 * request is checked against its schema, and `supervisor.*` operations never reach the agent.
 */
import { describe, expect, test } from "bun:test";
import { duplexPair } from "node:stream";
import { encodeFrame, FrameDecoder, FrameType, type Frame } from "../../../lib/agent/frame.ts";
import type { AgentHello } from "../../../lib/agent/messages.ts";
import { AlreadyExistsError, TimeoutError } from "../../../lib/errors.ts";
import { ClientSession, type SessionContext } from "../../../lib/supervisor/client-session.ts";
import { deferred } from "../../../lib/util/deferred.ts";

const AGENT_HELLO: AgentHello = {
  protocol: 1, agentVersion: "test", nonce: "agent's own", arch: "x86_64", pid1: true, bootTimeMs: 812, capabilities: ["exec"],
  limits: { maxFrame: 65536, initialWindow: 262144, maxStreams: 1024 },
  supervisor: { pid: 4242, sandbox: "abc123", state: "running", accel: "tcg", accelReason: "test" },
};

/** A session on one end of a pipe, and the raw frames that come out of the other. */
function session(context: Partial<SessionContext>) {
  const [client, server] = duplexPair();
  const frames: Frame[] = [];
  let ended = false;
  const decoder = new FrameDecoder();
  client.on("data", (chunk: Buffer) => decoder.push(chunk, (f) => frames.push(f)));
  client.on("end", () => (ended = true));
  new ClientSession(server, {
    relay: undefined,
    hello: async () => AGENT_HELLO,
    ops: new Proxy({} as SessionContext["ops"], { get: (_t, op: string) => async (request: Record<string, unknown>) => ({ op, request }) }),
    ...context,
  });
  const send = (type: number, stream: number, body?: unknown) =>
    client.write(encodeFrame(type, stream, body === undefined ? undefined : typeof body === "string" ? body : JSON.stringify(body)));
  const next = async (match: (f: Frame) => boolean) => {
    for (let i = 0; i < 200; i++) {
      const at = frames.findIndex(match);
      if (at >= 0) return frames.splice(at, 1)[0]!;
      await Bun.sleep(5);
    }
    throw new Error("no such frame");
  };
  const json = async (match: (f: Frame) => boolean) => JSON.parse((await next(match)).payload.toString());
  return { send, json, frames, ended: () => ended };
}

describe("the HELLO", () => {
  test("is held until the sandbox is ready, then answered with the agent's HELLO, the supervisor's part and the client's nonce", async () => {
    const ready = deferred<AgentHello>();
    const s = session({ hello: () => ready.promise });
    s.send(FrameType.HELLO, 0, { protocol: 1, nonce: "n-1", client: "test" });
    await Bun.sleep(50);
    expect(s.frames).toEqual([]);
    ready.resolve(AGENT_HELLO);
    expect(await s.json((f) => f.type === FrameType.HELLO)).toEqual({ ...AGENT_HELLO, nonce: "n-1" });
  });

  test("is refused with the boot's error (code, message, hint) and a hang-up when the sandbox failed", async () => {
    const s = session({ hello: async () => { throw new TimeoutError("the guest agent did not answer within 30 s", { hint: "see the console" }); } });
    s.send(FrameType.HELLO, 0, { protocol: 1, nonce: "n-2" });
    expect(await s.json((f) => f.type === FrameType.ERROR)).toEqual({ code: "TIMEOUT", message: "the guest agent did not answer within 30 s", hint: "see the console" });
    for (let i = 0; i < 100 && !s.ended(); i++) await Bun.sleep(5);
    expect(s.ended()).toBe(true);
  });

  test("a HELLO that is not the protocol's is BAD_REQUEST; anything before HELLO is HELLO_REQUIRED", async () => {
    const s = session({});
    s.send(FrameType.OPEN, 3, { op: "supervisor.ports" });
    expect(await s.json((f) => f.type === FrameType.ERROR)).toMatchObject({ code: "HELLO_REQUIRED" });
    s.send(FrameType.HELLO, 0, { protocol: 2, nonce: "x" });
    expect(await s.json((f) => f.type === FrameType.ERROR)).toMatchObject({ code: "BAD_REQUEST" });
    s.send(FrameType.HELLO, 0, "not json");
    expect(await s.json((f) => f.type === FrameType.ERROR)).toMatchObject({ code: "BAD_REQUEST" });
  });
});

describe("requests sent behind the HELLO (pipelined)", () => {
  function counting() {
    const calls: string[] = [];
    const ops = new Proxy({} as SessionContext["ops"], {
      get: (_t, op: string) => async (request: Record<string, unknown>) => {
        calls.push(op);
        return { op, request };
      },
    });
    return { calls, ops };
  }

  /** A session whose HELLO is sent and waits for `ready`; its supervisor operations are counted. */
  function waiting() {
    const ready = deferred<AgentHello>();
    const { calls, ops } = counting();
    const s = session({ hello: () => ready.promise, ops });
    s.send(FrameType.HELLO, 0, { protocol: 1, nonce: "early" });
    return { ready, calls, s };
  }

  test("wait for the answer and run after it, in the order sent", async () => {
    const { ready, calls, s } = waiting();
    s.send(FrameType.OPEN, 1, { op: "supervisor.ports" });
    s.send(FrameType.OPEN, 2, { op: "supervisor.status" });
    await Bun.sleep(50);
    expect(s.frames).toEqual([]);
    expect(calls).toEqual([]);
    ready.resolve(AGENT_HELLO);
    expect(await s.json((f) => f.type === FrameType.HELLO)).toMatchObject({ nonce: "early" });
    expect(await s.json((f) => f.type === FrameType.RESULT && f.streamId === 1)).toMatchObject({ op: "supervisor.ports" });
    expect(await s.json((f) => f.type === FrameType.RESULT && f.streamId === 2)).toMatchObject({ op: "supervisor.status" });
    expect(calls).toEqual(["supervisor.ports", "supervisor.status"]);
  });

  test("never run when the HELLO is refused", async () => {
    const { ready, calls, s } = waiting();
    s.send(FrameType.OPEN, 1, { op: "supervisor.ports" });
    await Bun.sleep(20);
    ready.reject(new TimeoutError("the guest agent did not answer within 30 s"));
    expect(await s.json((f) => f.type === FrameType.ERROR)).toMatchObject({ code: "TIMEOUT" });
    for (let i = 0; i < 100 && !s.ended(); i++) await Bun.sleep(5);
    expect(s.ended()).toBe(true);
    expect(calls).toEqual([]);
    expect(s.frames.filter((f) => f.streamId === 1)).toEqual([]);
  });

  test("are refused, not run, when the answer says the sandbox is paused or frozen", async () => {
    for (const supervisor of [
      { ...AGENT_HELLO.supervisor!, state: "paused" as const },
      { ...AGENT_HELLO.supervisor!, frozen: { code: "HOST_DISK_FULL", message: "the host's disk is full" } },
    ]) {
      const { calls, ops } = counting();
      const s = session({ hello: async () => ({ ...AGENT_HELLO, supervisor }), ops });
      s.send(FrameType.HELLO, 0, { protocol: 1, nonce: "n" });
      s.send(FrameType.OPEN, 1, { op: "supervisor.ports" });
      await s.json((f) => f.type === FrameType.HELLO);
      const refused = await s.json((f) => f.type === FrameType.ERROR && f.streamId === 1);
      expect(refused).toMatchObject({ code: supervisor.frozen ? "HOST_DISK_FULL" : "NOT_RUNNING", message: expect.stringContaining("not run") });
      expect(calls).toEqual([]);
      // Sent once the client knows: answered as before.
      s.send(FrameType.OPEN, 2, { op: "supervisor.ports" });
      await s.json((f) => f.type === FrameType.RESULT && f.streamId === 2);
      expect(calls).toEqual(["supervisor.ports"]);
    }
  });

  test("are bounded: a client that sends more than a few before the answer is cut off", async () => {
    const { ready, calls, s } = waiting();
    for (let i = 1; i <= 65; i++) s.send(FrameType.OPEN, i, { op: "supervisor.ports" });
    expect(await s.json((f) => f.type === FrameType.ERROR && f.streamId === 0)).toMatchObject({ code: "BAD_REQUEST", message: expect.stringContaining("before the HELLO was answered") });
    for (let i = 0; i < 100 && !s.ended(); i++) await Bun.sleep(5);
    expect(s.ended()).toBe(true);
    ready.resolve(AGENT_HELLO);
    await Bun.sleep(20);
    expect(calls).toEqual([]);
  });
});

describe("supervisor operations", () => {
  async function greeted(context: Partial<SessionContext> = {}) {
    const s = session(context);
    s.send(FrameType.HELLO, 0, { protocol: 1, nonce: "n" });
    await s.json((f) => f.type === FrameType.HELLO);
    return s;
  }

  test("are answered by the supervisor with their schema-checked request", async () => {
    const s = await greeted();
    s.send(FrameType.OPEN, 1, { op: "supervisor.expose", guestPort: 8080 });
    expect(await s.json((f) => f.type === FrameType.RESULT && f.streamId === 1)).toEqual({ op: "supervisor.expose", request: { op: "supervisor.expose", guestPort: 8080 } });
  });

  test("a request that breaks its schema is INVALID_INPUT naming the field; an unknown one is UNKNOWN_OP", async () => {
    const s = await greeted();
    s.send(FrameType.OPEN, 1, { op: "supervisor.expose", guestPort: 70000 });
    expect(await s.json((f) => f.type === FrameType.ERROR && f.streamId === 1)).toMatchObject({ code: "INVALID_INPUT", message: expect.stringContaining("guestPort") });
    s.send(FrameType.OPEN, 2, { op: "supervisor.reboot" });
    expect(await s.json((f) => f.type === FrameType.ERROR && f.streamId === 2)).toMatchObject({ code: "UNKNOWN_OP" });
  });

  test("a failing operation answers with its error's code and hint", async () => {
    const ops = new Proxy({} as SessionContext["ops"], {
      get: () => async () => {
        throw new AlreadyExistsError("Cannot expose port 80 on 127.0.0.1:9000: the host port is in use", { hint: "pick another" });
      },
    });
    const s = await greeted({ ops });
    s.send(FrameType.OPEN, 4, { op: "supervisor.expose", guestPort: 80, hostPort: 9000 });
    expect(await s.json((f) => f.type === FrameType.ERROR && f.streamId === 4)).toEqual({
      code: "ALREADY_EXISTS", message: "Cannot expose port 80 on 127.0.0.1:9000: the host port is in use", hint: "pick another", stream: 4,
    });
  });

  test("an agent operation while no agent is connected is AGENT_UNAVAILABLE", async () => {
    const s = await greeted();
    s.send(FrameType.OPEN, 5, { op: "exec", argv: ["true"] });
    expect(await s.json((f) => f.type === FrameType.ERROR && f.streamId === 5)).toMatchObject({ code: "AGENT_UNAVAILABLE" });
  });
});
