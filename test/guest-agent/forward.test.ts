import { afterAll, beforeAll, expect, test } from "bun:test";
import { createHash, randomBytes } from "node:crypto";
import { createServer, type AddressInfo, type Server } from "node:net";
import type { AgentClient } from "../../lib/agent/client.ts";
import { startTestAgent, type TestAgent } from "../helpers/agent.ts";

let agent: TestAgent;
let client: AgentClient;
let echo: Server;
let echoPort: number;

beforeAll(async () => {
  agent = await startTestAgent();
  client = await agent.connect();
  // An echo server that half-closes back once the peer has half-closed and all is echoed.
  echo = createServer({ allowHalfOpen: true }, (sock) => {
    sock.pipe(sock);
  });
  await new Promise<void>((resolve) => echo.listen(0, "127.0.0.1", resolve));
  echoPort = (echo.address() as AddressInfo).port;
}, 60_000);

afterAll(async () => {
  await client?.close();
  await agent?.stop();
  echo?.close();
});

test("a port forward carries 10 MB both ways intact and half-closes in each direction", async () => {
  const payload = randomBytes(10 * 1024 * 1024);
  const stream = await client.forward(echoPort);
  const received: Buffer[] = [];
  const ended = new Promise<void>((resolve) => stream.on("end", resolve));
  stream.on("data", (b: Buffer) => received.push(b));
  for (let off = 0; off < payload.length; off += 100_000) {
    if (!stream.write(payload.subarray(off, off + 100_000))) await new Promise((r) => stream.once("drain", r));
  }
  stream.end(); // our half-close: the echo server sees EOF, finishes echoing and closes its side
  await ended;
  const got = Buffer.concat(received);
  expect(got.length).toBe(payload.length);
  expect(createHash("sha256").update(got).digest("hex")).toBe(createHash("sha256").update(payload).digest("hex"));
}, 60_000);

test("the guest side may close first while the host keeps sending", async () => {
  const server = createServer({ allowHalfOpen: true }, (sock) => {
    const chunks: Buffer[] = [];
    sock.end("hello from the guest\n"); // closes its write side at once
    sock.on("data", (b: Buffer) => chunks.push(b));
    sock.on("end", () => sock.destroy());
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  try {
    const stream = await client.forward((server.address() as AddressInfo).port);
    let text = "";
    stream.setEncoding("utf8");
    stream.on("data", (s: string) => (text += s));
    await new Promise<void>((resolve) => stream.once("end", resolve));
    expect(text).toBe("hello from the guest\n");
    stream.end("still talking\n");
    await new Promise<void>((resolve) => stream.once("close", resolve));
  } finally {
    server.close();
  }
});

test("a refused connection is a clear error", async () => {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const port = (server.address() as AddressInfo).port;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  const err = await client.forward(port).catch((e) => e);
  expect(err.details.agentCode).toBe("CONNECTION_REFUSED");
  expect(err.hint).toContain("nothing listens");
});
