/**
 * The runtime's own Unix socket (lib/host/unix-socket.ts) behaves as the node socket the session
 * layer was written for: bytes both ways in order (written before the connection too), back
 * pressure with `drain`, the end and close of the peer, node's error codes, and an agent session
 * over it.
 */
import { describe, expect, test } from "bun:test";
import { createServer, type Server, type Socket } from "node:net";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { AgentClient } from "../../../lib/agent/client.ts";
import type { ByteStream } from "../../../lib/agent/types.ts";
import { connectUnix } from "../../../lib/host/unix-socket.ts";
import { withTestAgent, type TestAgent } from "../../helpers/agent.ts";
import { scratchDir } from "../../helpers/scratch.ts";

const dir = scratchDir("unix-socket");
let agent: TestAgent;
withTestAgent((started) => {
  agent = started;
});

async function serve(name: string, onConnection: (peer: Socket) => void): Promise<{ path: string; server: Server }> {
  const path = join(dir, name);
  const server = createServer(onConnection);
  await new Promise<void>((resolve) => server.listen(path, resolve));
  return { path, server };
}

function collect(socket: ByteStream): { chunks: Buffer[]; events: string[] } {
  const seen = { chunks: [] as Buffer[], events: [] as string[] };
  socket.on("connect", () => seen.events.push("connect"));
  socket.on("data", (chunk: Buffer) => seen.chunks.push(chunk));
  socket.on("end", () => seen.events.push("end"));
  socket.on("close", () => seen.events.push("close"));
  socket.on("error", (error: NodeJS.ErrnoException) => seen.events.push(`error ${error.code}`));
  return seen;
}

async function until(check: () => boolean, what: string): Promise<void> {
  for (let i = 0; i < 400 && !check(); i++) await Bun.sleep(5);
  if (!check()) throw new Error(`timed out waiting for ${what}`);
}

describe("connectUnix", () => {
  test("what is written before the connection goes out once it is, in order; the peer's bytes, end and close come back", async () => {
    const received: Buffer[] = [];
    const { path, server } = await serve("echo.sock", (peer) => {
      peer.on("data", (chunk: Buffer) => {
        received.push(chunk);
        if (Buffer.concat(received).toString() === "one two") peer.end("bye");
      });
    });
    const socket = await connectUnix(path);
    const seen = collect(socket);
    expect(socket.write(Buffer.from("one "))).toBe(true);
    socket.write(Buffer.from("two"));
    await until(() => seen.events.includes("close"), "close");
    expect(Buffer.concat(seen.chunks).toString()).toBe("bye");
    expect(seen.events).toEqual(["connect", "end", "close"]);
    server.close();
  });

  test("back pressure: a write the kernel cannot take says false, the rest goes out, then drain", async () => {
    let got = 0;
    const { path, server } = await serve("sink.sock", (peer) => {
      peer.pause();
      setTimeout(() => {
        peer.on("data", (chunk: Buffer) => (got += chunk.length));
        peer.resume();
      }, 100);
    });
    const socket = await connectUnix(path);
    const seen = collect(socket);
    await until(() => seen.events.includes("connect"), "connect");
    let drained = false;
    socket.on("drain", () => (drained = true));
    const big = Buffer.alloc(8 * 1024 * 1024, 7);
    expect(socket.write(big)).toBe(false);
    await until(() => got === big.length, "every byte at the peer");
    expect(drained).toBe(true);
    socket.destroy();
    await until(() => seen.events.includes("close"), "close");
    server.close();
  });

  test("every chunk received stays as it came (a session keeps partial frames and payloads across reads)", async () => {
    const sent = Buffer.alloc(4 * 1024 * 1024);
    for (let i = 0; i < sent.length; i += 4) sent.writeUInt32BE(i, i);
    const { path, server } = await serve("source.sock", (peer) => peer.end(sent));
    const socket = await connectUnix(path);
    const seen = collect(socket);
    await until(() => seen.events.includes("close"), "close");
    expect(seen.chunks.length).toBeGreaterThan(1);
    expect(Buffer.concat(seen.chunks).equals(sent)).toBe(true);
    server.close();
  });

  test("no socket is ENOENT, a file that is not listening ECONNREFUSED: an error with node's code, then close", async () => {
    const missing = collect(await connectUnix(join(dir, "missing.sock")));
    await until(() => missing.events.includes("close"), "close");
    expect(missing.events).toEqual(["error ENOENT", "close"]);
    writeFileSync(join(dir, "plain-file"), "");
    const refused = collect(await connectUnix(join(dir, "plain-file")));
    await until(() => refused.events.includes("close"), "close");
    expect(refused.events).toEqual(["error ECONNREFUSED", "close"]);
  });

  test("destroyed before it connects: nothing is sent, and it closes", async () => {
    let connections = 0;
    const { path, server } = await serve("early.sock", (peer) => {
      connections++;
      peer.on("data", () => connections++);
    });
    const socket = await connectUnix(path);
    const seen = collect(socket);
    socket.write(Buffer.from("never"));
    socket.destroy();
    await until(() => seen.events.includes("close"), "close");
    await Bun.sleep(50);
    expect(connections).toBeLessThanOrEqual(1); // accepted at most, never written to
    expect(seen.chunks).toEqual([]);
    server.close();
  });

  test("an agent session runs over it", async () => {
    const client = await AgentClient.connect(await connectUnix(agent.socketPath));
    expect((await client.run(["echo", "over the runtime's socket"])).stdout).toBe("over the runtime's socket\n");
    await client.close();
  });
});
