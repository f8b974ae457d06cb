/**
 * Requests sent behind the HELLO, before its answer (AgentConnectOptions.first): the agent takes
 * them in order after the HELLO, a peer that does not take them refuses them with HELLO_REQUIRED
 * (and the caller learns it), and streams opened on the protocol's default window take the
 * window the answer announces.
 */
import { describe, expect, test } from "bun:test";
import { duplexPair } from "node:stream";
import { AgentClient } from "../../../lib/agent/client.ts";
import { Channel, encodeFrame, FrameDecoder, FrameType, INITIAL_WINDOW, type Frame } from "../../../lib/agent/frame.ts";
import type { ExecHandle } from "../../../lib/agent/types.ts";
import { withTestAgent, type TestAgent } from "../../helpers/agent.ts";

let agent: TestAgent;
withTestAgent((started) => {
  agent = started;
});

/** A scripted peer on a pipe: it sees the client's frames and answers as told. */
function scriptedPeer(answer: (frame: Frame, send: (type: number, stream: number, body: unknown, flags?: number) => void) => void) {
  const [client, peer] = duplexPair();
  const seen: Frame[] = [];
  const decoder = new FrameDecoder();
  const send = (type: number, stream: number, body: unknown, flags = 0) =>
    peer.write(encodeFrame(type, stream, typeof body === "string" || body instanceof Uint8Array ? body : JSON.stringify(body), flags));
  peer.on("data", (chunk: Buffer) => decoder.push(chunk, (frame) => {
    seen.push(frame);
    answer(frame, send);
  }));
  return { socket: client, seen, send };
}

const HELLO = (nonce: string, initialWindow = INITIAL_WINDOW) => ({
  protocol: 1, agentVersion: "test", nonce, arch: "x86_64", pid1: false, bootTimeMs: 1, capabilities: ["exec"],
  limits: { maxFrame: 65536, initialWindow, maxStreams: 1024 },
});

describe("requests sent behind the HELLO", () => {
  test("the agent runs a command sent before its HELLO answer, after the HELLO", async () => {
    let early: Promise<ExecHandle> | undefined;
    const client = await AgentClient.connect(await agent.connectRaw(), { first: (c) => (early = c.exec({ argv: ["echo", "behind the hello"] })) });
    const proc = await early!;
    const out: Buffer[] = [];
    proc.stdout.on("data", (chunk: Buffer) => out.push(chunk));
    // Its output is whole once its stream ends (the RESULT may come in the same read as the bytes).
    const ended = new Promise((resolve) => proc.stdout.once("end", resolve));
    expect(await proc.wait()).toMatchObject({ exitCode: 0 });
    await ended;
    expect(Buffer.concat(out).toString()).toBe("behind the hello\n");
    // The session goes on as any other.
    expect((await client.run(["echo", "after"])).stdout).toBe("after\n");
    await client.close();
  });

  test("a peer that takes nothing before its answer refuses it with HELLO_REQUIRED, which the caller sees", async () => {
    let openBeforeAnswer = false;
    const { socket, seen } = scriptedPeer((frame, send) => {
      if (frame.type === FrameType.OPEN) send(FrameType.ERROR, frame.streamId, { code: "HELLO_REQUIRED", message: "send HELLO first", stream: frame.streamId });
      if (frame.type === FrameType.HELLO) {
        setTimeout(() => {
          openBeforeAnswer = seen.some((f) => f.type === FrameType.OPEN);
          send(FrameType.HELLO, 0, HELLO(JSON.parse(frame.payload.toString()).nonce));
        }, 20);
      }
    });
    let refusal: Promise<unknown> | undefined;
    const client = await AgentClient.connect(socket, { first: (c) => (refusal = c.exec({ argv: ["true"] }).catch((e) => e)) });
    expect(await refusal).toMatchObject({ code: "AGENT_UNAVAILABLE", details: { agentCode: "HELLO_REQUIRED" } });
    // It was sent behind the HELLO, not after the answer.
    expect(openBeforeAnswer).toBe(true);
    await client.close();
  });

  test("a refused HELLO fails what was sent behind it with the refusal", async () => {
    const { socket } = scriptedPeer((frame, send) => {
      if (frame.type === FrameType.HELLO) send(FrameType.ERROR, 0, { code: "NOT_RUNNING", message: "Sandbox \"x\" is stopped" });
    });
    let early: Promise<unknown> | undefined;
    const refused = await AgentClient.connect(socket, { first: (c) => (early = c.exec({ argv: ["true"] }).catch((e) => e)) }).catch((e) => e);
    expect(refused).toMatchObject({ code: "NOT_RUNNING" });
    expect(await early).toMatchObject({ code: "NOT_RUNNING" });
  });

  test("a stream opened on the default window takes the window the answer announces", async () => {
    const announced = INITIAL_WINDOW * 2;
    const { socket, seen, send } = scriptedPeer((frame, reply) => {
      if (frame.type === FrameType.HELLO) reply(FrameType.HELLO, 0, HELLO(JSON.parse(frame.payload.toString()).nonce, announced));
    });
    let early: Promise<ExecHandle> | undefined;
    const client = await AgentClient.connect(socket, { first: (c) => (early = c.exec({ argv: ["big"] })) });
    const stream = seen.find((f) => f.type === FrameType.OPEN)!.streamId;
    send(FrameType.EVENT, stream, { event: "started", pid: 7 });
    const proc = await early!;
    // Within the announced window (more than the default), with nothing read yet (so no credit
    // granted back): taken, not a protocol violation.
    const chunk = new Uint8Array(65536);
    for (let sent = 0; sent < INITIAL_WINDOW + 65536; sent += chunk.length) send(FrameType.DATA, stream, chunk, Channel.OUT);
    await Bun.sleep(20);
    expect(client.isClosed).toBe(false);
    let received = 0;
    proc.stdout.on("data", (chunk: Buffer) => (received += chunk.length));
    await Bun.sleep(20);
    expect(received).toBe(INITIAL_WINDOW + 65536);
    await client.close();
  });

  test("a command with stdin waits for the answer: sent before it, it is refused", async () => {
    let error: unknown;
    const client = await AgentClient.connect(await agent.connectRaw(), { first: (c) => void c.exec({ argv: ["cat"], stdin: true }).catch((e) => (error = e)) });
    await Bun.sleep(10);
    expect(error).toMatchObject({ code: "INVALID_INPUT" });
    await client.close();
  });
});

describe("a client of a supervisor (supervised)", () => {
  const supervisorPart = { pid: 1, sandbox: "abc", state: "running", accel: "tcg", accelReason: "test" };

  async function sessionWith(supervisor: Record<string, unknown>) {
    const { socket, seen, send } = scriptedPeer((frame, reply) => {
      if (frame.type === FrameType.HELLO) reply(FrameType.HELLO, 0, { ...HELLO(JSON.parse(frame.payload.toString()).nonce), supervisor });
    });
    const client = await AgentClient.connect(socket, { supervised: true });
    const running = client.run(["true"]).catch((e: unknown) => e);
    await Bun.sleep(10);
    const stream = seen.find((f) => f.type === FrameType.OPEN)!.streamId;
    send(FrameType.EVENT, stream, { event: "started", pid: 9 });
    send(FrameType.RESULT, stream, { exitCode: "zero", signal: null, timedOut: false, durationMs: 1 });
    return { client, outcome: await running };
  }

  test("takes the answers as checked when its supervisor says it checks them", async () => {
    const { client, outcome } = await sessionWith({ ...supervisorPart, checks: true });
    expect(outcome).toMatchObject({ exitCode: "zero" });
    await client.close();
  });

  test("takes as checked the answers that come in the same read as that HELLO (a command sent behind it)", async () => {
    let nonce = "";
    const [socket, peer] = duplexPair();
    const decoder = new FrameDecoder();
    peer.on("data", (chunk: Buffer) => decoder.push(chunk, (frame) => {
      if (frame.type === FrameType.HELLO) nonce = JSON.parse(frame.payload.toString()).nonce;
      if (frame.type !== FrameType.OPEN) return;
      // One write: the HELLO, the command's start and its end arrive together, as from a fast guest.
      peer.write(Buffer.concat([
        encodeFrame(FrameType.HELLO, 0, JSON.stringify({ ...HELLO(nonce), supervisor: { ...supervisorPart, checks: true } })),
        encodeFrame(FrameType.EVENT, frame.streamId, JSON.stringify({ event: "started", pid: 9 })),
        encodeFrame(FrameType.RESULT, frame.streamId, JSON.stringify({ exitCode: "zero", signal: null, timedOut: false, durationMs: 1 })),
      ]));
    }));
    let early: Promise<ExecHandle> | undefined;
    const client = await AgentClient.connect(socket, { supervised: true, first: (c) => (early = c.exec({ argv: ["true"] })) });
    expect(await (await early!).wait()).toMatchObject({ exitCode: "zero" });
    await client.close();
  });

  test("checks them itself when its supervisor does not say so (one from before it did)", async () => {
    const { client, outcome } = await sessionWith(supervisorPart);
    expect(outcome).toMatchObject({ code: "AGENT_UNAVAILABLE", message: expect.stringContaining("exec RESULT is not valid") });
    await client.close();
  });
});
