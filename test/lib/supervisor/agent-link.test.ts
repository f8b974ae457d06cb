/**
 * The supervisor's link to the agent (agent-link.ts) over a channel its VMM provides: a virtio
 * port may hold half a frame of a supervisor that died, so the link resyncs; a channel that is
 * not there yet is tried again until the deadline; a VM that ends first is said as such.
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { connect, createServer, type Server } from "node:net";
import { join } from "node:path";
import { encodeFrame, FrameType, RESYNC_PAD_SIZE } from "../../../lib/agent/frame.ts";
import type { AgentTransport, Vmm } from "../../../lib/backends/types.ts";
import { AgentUnavailableError, TimeoutError } from "../../../lib/errors.ts";
import { connectAgent } from "../../../lib/supervisor/agent-link.ts";
import { startTestAgent, type TestAgent } from "../../helpers/agent.ts";

let agent: TestAgent;
beforeAll(async () => {
  // --hunt: the agent treats its socket as a virtio port would be, skipping bytes to a HELLO.
  agent = await startTestAgent(["--hunt"]);
}, 300_000);
afterAll(() => agent?.stop());

/**
 * A VMM whose agent channel is `path`, with `before` written into it first (an earlier host's
 * leftovers); `written` counts the bytes the link sends.
 */
function vmmOn(path: string, options: { before?: Uint8Array; resync?: boolean } = {}): Vmm & { written: number[] } {
  const written: number[] = [];
  return {
    written,
    openAgent: () => new Promise<AgentTransport>((resolve, reject) => {
      const socket = connect(path);
      socket.once("connect", () => {
        if (options.before) socket.write(options.before);
        const write = socket.write.bind(socket);
        socket.write = ((chunk: Uint8Array, ...rest: never[]) => {
          written.push(chunk.length);
          return write(chunk, ...rest);
        }) as typeof socket.write;
        resolve({ socket, resync: options.resync ?? true });
      });
      socket.once("error", reject);
    }),
  } as unknown as Vmm & { written: number[] };
}

test("on a channel that may hold an earlier host's half frame, pads and hunts before its HELLO, then routes the agent's frames", async () => {
  const halfFrame = encodeFrame(FrameType.OPEN, 7, JSON.stringify({ op: "exec", argv: ["true"] })).subarray(0, 20);
  const vmm = vmmOn(agent.socketPath, { before: halfFrame });
  const link = await connectAgent(vmm, Date.now() + 10_000, new AbortController().signal);
  expect(vmm.written[0]).toBe(RESYNC_PAD_SIZE);
  expect(link.hello.protocol).toBe(1);
  expect(link.hello.capabilities).toContain("exec");
  const frames: number[] = [];
  link.onFrame((frame) => frames.push(frame.type), () => {});
  link.socket.write(encodeFrame(FrameType.OPEN, 3, JSON.stringify({ op: "ping" })));
  for (let i = 0; i < 100 && !frames.includes(FrameType.RESULT); i++) await Bun.sleep(10);
  expect(frames).toContain(FrameType.RESULT);
  link.socket.destroy();
});

test("a channel not there yet is tried again until it is", async () => {
  const path = join(agent.dir, "late.sock");
  let server: Server | undefined;
  setTimeout(() => {
    server = createServer((socket) => socket.pipe(connect(agent.socketPath)).pipe(socket)).listen(path);
  }, 200);
  const link = await connectAgent(vmmOn(path), Date.now() + 10_000, new AbortController().signal);
  expect(link.hello.protocol).toBe(1);
  link.socket.destroy();
  server?.close();
});

test("a guest that never answers is a TimeoutError at the deadline", async () => {
  const path = join(agent.dir, "silent.sock");
  const silent = createServer(() => {}).listen(path);
  const started = Date.now();
  const error = await connectAgent(vmmOn(path), Date.now() + 300, new AbortController().signal).catch((e: unknown) => e);
  expect(error).toBeInstanceOf(TimeoutError);
  expect(Date.now() - started).toBeLessThan(5_000);
  silent.close();
});

test("a VM that ends first is AGENT_UNAVAILABLE, at once", async () => {
  const path = join(agent.dir, "ending.sock");
  const silent = createServer(() => {}).listen(path);
  const ended = new AbortController();
  setTimeout(() => ended.abort(), 100);
  const started = Date.now();
  const error = await connectAgent(vmmOn(path), Date.now() + 30_000, ended.signal).catch((e: unknown) => e);
  expect(error).toBeInstanceOf(AgentUnavailableError);
  expect((error as Error).message).toContain("stopped before its agent answered");
  expect(Date.now() - started).toBeLessThan(5_000);
  silent.close();
});
