/**
 * AgentClient holds a guest to the protocol on its own, whether or not a supervisor stands in
 * front of it: data past the credit it granted, data on the host's channel, a HELLO that claims
 * an unbounded window, collected output past its limit, and a command past its timeout.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { spawn, type ChildProcess } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { connect, createServer, type Server } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { AgentClient } from "../../../lib/agent/client.ts";
import { encodeFrame, FrameDecoder, FrameType, MAX_PAYLOAD } from "../../../lib/agent/frame.ts";
import { AgentUnavailableError } from "../../../lib/errors.ts";
import { startTestAgent, waitUntil, type TestAgent } from "../../helpers/agent.ts";
import type { HostileMode } from "../../helpers/hostile-agent.ts";

let agent: TestAgent;
const hostiles: ChildProcess[] = [];
const scratch = mkdtempSync(join(tmpdir(), "smolvm-bounds-"));

beforeAll(async () => {
  agent = await startTestAgent();
}, 60_000);
afterAll(async () => {
  await agent?.stop();
  for (const child of hostiles) child.kill("SIGKILL");
  rmSync(scratch, { recursive: true, force: true });
});

/** The hostile agent (test/helpers/hostile-agent.ts) in `mode`, and a client connected to it directly. */
async function hostile(mode: HostileMode): Promise<AgentClient> {
  const socket = join(scratch, `${mode}-${hostiles.length}.sock`);
  let said = "";
  const child = spawn(process.execPath, [join(import.meta.dirname, "../../helpers/hostile-agent.ts"), "--listen", `unix:${socket}`, "--mode", mode], { stdio: ["ignore", "ignore", "pipe"] });
  hostiles.push(child);
  child.stderr!.on("data", (chunk) => (said += chunk));
  if (!(await waitUntil(() => said.includes("ready"), 10_000))) throw new Error(`the hostile agent did not start: ${said}`);
  const stream = connect(socket);
  await new Promise((resolve) => stream.once("connect", resolve));
  return AgentClient.connect(stream);
}

describe("a guest agent beyond its credit, on the host's channel, or with a HELLO out of bounds", () => {
  test("data past the credit the client granted cuts the connection with the reason", async () => {
    const client = await hostile("flood");
    // Nobody reads its output, so no credit is granted past the first window.
    const proc = await client.exec({ argv: ["yes"] });
    const outcome = await proc.wait().catch((error: unknown) => error);
    expect(outcome).toBeInstanceOf(AgentUnavailableError);
    expect((outcome as Error).message).toMatch(/^The guest agent broke the protocol: it sent \d+ bytes beyond its credit on stream 1$/);
    expect(client.isClosed).toBe(true);
  });

  test("data on channel 0, which only the host writes, cuts the connection", async () => {
    const client = await hostile("wrong-channel");
    const outcome = await client.run(["true"]).catch((error: unknown) => error);
    expect((outcome as Error).message).toBe("The guest agent broke the protocol: it sent data on channel 0 of stream 1, which only the host writes");
  });

  test("a HELLO claiming a window over 1 MiB is refused", async () => {
    const path = join(scratch, "greedy.sock");
    const server: Server = createServer((socket) => {
      const decoder = new FrameDecoder();
      socket.on("data", (bytes: Buffer) => decoder.push(bytes, (frame) => {
        const { nonce } = JSON.parse(frame.payload.toString());
        socket.write(encodeFrame(FrameType.HELLO, 0, JSON.stringify({
          protocol: 1, agentVersion: "x", nonce, arch: "x86_64", pid1: false, bootTimeMs: 1, capabilities: [],
          limits: { maxFrame: MAX_PAYLOAD, initialWindow: 1 << 30, maxStreams: 1 },
        })));
      }));
    });
    await new Promise<void>((resolve) => server.listen(path, resolve));
    try {
      const stream = connect(path);
      await new Promise((resolve) => stream.once("connect", resolve));
      const outcome = await AgentClient.connect(stream).catch((error: unknown) => error);
      expect(outcome).toBeInstanceOf(AgentUnavailableError);
      expect((outcome as Error).message).toMatch(/^The peer answered HELLO with an invalid message: /);
    } finally {
      server.close();
    }
  });
});

describe("limits of the client's own", () => {
  test("run collects at most maxOutputBytes, then kills the command and says so", async () => {
    const client = await agent.connect();
    const t0 = Date.now();
    const outcome = await client.run("yes", { maxOutputBytes: 1024 * 1024 }).catch((error: unknown) => error);
    expect(outcome).toMatchObject({ code: "RESOURCE_EXHAUSTED", message: "Cannot collect the command's output: it printed more than 1048576 bytes" });
    expect(Date.now() - t0).toBeLessThan(10_000);
    // The command is gone: nothing named yes runs any more (a zombie this host's init leaves unreaped is dead).
    const left = await client.run(["sh", "-c", "for p in /proc/[0-9]*; do [ \"$(cat $p/comm 2>/dev/null)\" = yes ] && ! grep -q '^[0-9]* (yes) Z' $p/stat && echo $p; done; true"]);
    expect(left.stdout).toBe("");
    await client.close();
  });

  test("a command past its timeout that the agent does not end is ended by the host after 3 s, as timed out", async () => {
    const client = await hostile("silent");
    const t0 = Date.now();
    const outcome = await client.run(["sleep", "100"], { timeoutMs: 500 }).catch((error: unknown) => error);
    expect(outcome).toMatchObject({ code: "TIMEOUT", message: "The guest agent did not start the command within its 0.5 s timeout" });
    expect(Date.now() - t0).toBeGreaterThanOrEqual(3_400);
    expect(Date.now() - t0).toBeLessThan(6_000);
  });
});
