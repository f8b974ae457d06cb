/**
 * The host side of hybrid vsock against real Unix sockets: a shim that speaks Firecracker's
 * CONNECT/OK handshake in front of the real native guest agent (a real exec goes through it), and
 * small servers that answer wrongly, late or not at all.
 */
import { afterEach, beforeEach, describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { createServer, type Server, type Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { connectVsock, VsockRefusedError, waitForVsock } from "../../../../lib/backends/firecracker/vsock.ts";
import { AGENT_VSOCK_PORT } from "../../../../lib/backends/firecracker/plan.ts";
import { AgentClient } from "../../../../lib/agent/client.ts";
import { AgentUnavailableError, TimeoutError } from "../../../../lib/errors.ts";
import { rejection } from "../../../helpers/rejection.ts";
import { type TestAgent, withTestAgent } from "../../../helpers/agent.ts";
import { startVsockShim, type VsockShim } from "../../../helpers/vsock-shim.ts";

let agent: TestAgent;
let dir: string;
let shims: VsockShim[];
let servers: Server[];
let open: Socket[];

withTestAgent((started) => {
  agent = started;
});

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), "smolvm-fc-vsock-"));
  shims = [];
  servers = [];
  open = [];
});

afterEach(async () => {
  for (const socket of open) socket.destroy();
  for (const shim of shims) await shim.close();
  for (const server of servers) await new Promise<void>((resolve) => server.close(() => resolve()));
  rmSync(dir, { recursive: true, force: true });
});

async function shim(options: { reply?: (port: number) => string } = {}): Promise<VsockShim> {
  const started = await startVsockShim({ udsPath: join(dir, "vsock.sock"), ports: { [AGENT_VSOCK_PORT]: agent.socketPath }, ...options });
  shims.push(started);
  return started;
}

/** A Unix server whose connections are handled by `onConnection` (the CONNECT line is theirs to read). */
async function rawServer(onConnection: (socket: Socket) => void): Promise<string> {
  const path = join(dir, `raw${servers.length}.sock`);
  const server = createServer((socket) => {
    open.push(socket);
    socket.on("error", () => {});
    onConnection(socket);
  });
  servers.push(server);
  await new Promise<void>((resolve) => server.listen(path, () => resolve()));
  return path;
}


describe("through a CONNECT/OK shim in front of the real agent", () => {
  test("a real exec runs over the handed-back stream, after exactly one CONNECT line for the agent's port", async () => {
    const vsock = await shim();
    const socket = await connectVsock(vsock.udsPath, AGENT_VSOCK_PORT);
    const client = await AgentClient.connect(socket);
    try {
      const result = await client.run(["sh", "-c", "echo via-vsock; echo oops >&2; exit 3"]);
      expect(result.stdout).toBe("via-vsock\n");
      expect(result.stderr).toBe("oops\n");
      expect(result.exitCode).toBe(3);
    } finally {
      await client.close();
    }
    expect(vsock.connects).toEqual([`CONNECT ${AGENT_VSOCK_PORT}`]);
  });

  test("a port nobody listens on is refused (closed before OK), and waitForVsock keeps trying until it times out", async () => {
    const vsock = await shim();
    expect(await rejection(connectVsock(vsock.udsPath, 5000))).toBeInstanceOf(VsockRefusedError);
    const started = Date.now();
    const error = await rejection(waitForVsock(vsock.udsPath, 5000, { timeoutMs: 300 }));
    expect(error).toBeInstanceOf(TimeoutError);
    expect(error.message).toContain("closed before");
    expect(vsock.connects.length).toBeGreaterThan(2);
    expect(Date.now() - started).toBeLessThan(3_000);
  });

  test("waitForVsock connects once the guest side appears", async () => {
    const udsPath = join(dir, "vsock.sock");
    const waiting = waitForVsock(udsPath, AGENT_VSOCK_PORT, { timeoutMs: 10_000 });
    await new Promise((resolve) => setTimeout(resolve, 150));
    await shim();
    const client = await AgentClient.connect(await waiting);
    try {
      expect((await client.run("echo late")).stdout).toBe("late\n");
    } finally {
      await client.close();
    }
  });

  test("waitForVsock gives up at once when the VMM has exited", async () => {
    const error = await rejection(waitForVsock(join(dir, "never.sock"), AGENT_VSOCK_PORT, { timeoutMs: 10_000, exited: Promise.resolve() }));
    expect(error.code).toBe("NOT_RUNNING");
    expect(error.message).toContain("Firecracker exited");
  });
});

describe("the acknowledgement", () => {
  test("bytes the guest sends right behind OK reach the stream's reader", async () => {
    const path = await rawServer((socket) => socket.once("data", () => socket.write("OK 1073741824\nfirst bytes")));
    const socket = await connectVsock(path, 52);
    const got = await new Promise<string>((resolve) => socket.once("data", (chunk: Buffer) => resolve(chunk.toString())));
    socket.destroy();
    expect(got).toBe("first bytes");
  });

  test("an answer other than OK <number>, an overlong line, and silence are clear errors", async () => {
    const no = await rawServer((socket) => socket.once("data", () => socket.write("NO such port\n")));
    const error = await rejection(connectVsock(no, 52));
    expect(error).toBeInstanceOf(AgentUnavailableError);
    expect(error.message).toBe(`Cannot connect to the guest's vsock port 52 through "${no}": expected "OK <port>", got "NO such port"`);
    const flood = await rawServer((socket) => socket.once("data", () => socket.write("OK ".padEnd(4096, "9"))));
    expect((await rejection(connectVsock(flood, 52))).message).toContain('expected "OK <port>"');
    const mute = await rawServer(() => {});
    const slow = await rejection(connectVsock(mute, 52, { timeoutMs: 150 }));
    expect(slow).toBeInstanceOf(TimeoutError);
    expect(slow.message).toContain("no acknowledgement within 150 ms");
  });

  test("a socket that does not exist is NOT_RUNNING, and a port out of range is refused before connecting", async () => {
    const missing = await rejection(connectVsock(join(dir, "absent.sock"), 52));
    expect(missing.code).toBe("NOT_RUNNING");
    expect(missing.message).toContain("does not exist");
    expect((await rejection(connectVsock(join(dir, "absent.sock"), -1))).code).toBe("INVALID_INPUT");
  });
});
