/**
 * The supervisor's own connection to the guest agent over the VMM's chardev socket.
 *
 * A virtio-serial port outlives its host side: a supervisor that died may have left the agent
 * in the middle of a frame, and the bytes waiting for us may start mid-frame too. So the
 * handshake always resyncs (PROTOCOL.md, "Reconnecting mid-stream"): pad, HELLO with a fresh
 * nonce, and skip everything until the HELLO that echoes it.
 */
import { randomBytes } from "node:crypto";
import { existsSync } from "node:fs";
import { connect, type Socket } from "node:net";
import { AgentUnavailableError, TimeoutError } from "../errors.ts";
import { versionInfo } from "../version.ts";
import { encodeFrame, FrameType } from "../agent/frame.ts";

const MAGIC_HELLO = Buffer.from([0x53, 0x56, 0x01, FrameType.HELLO, 0, 0, 0, 0, 0, 0, 0, 0]);
const HEADER = 16;
const RESYNC_PAD = 65536 + HEADER;

export interface AgentHello {
  protocol: number;
  agentVersion: string;
  nonce: string;
  bootTimeMs?: number;
  capabilities: string[];
  limits: Record<string, number>;
  [key: string]: unknown;
}

export interface AgentLink {
  socket: Socket;
  hello: AgentHello;
  /** Bytes that arrived after the HELLO: the start of the frame stream. */
  rest: Buffer;
}

/**
 * Connects and completes the handshake, retrying while the guest boots (the agent answers only
 * once it is up). Rejects with a TimeoutError at `deadline` or when `abort` fires.
 */
export async function connectAgent(socketPath: string, deadline: number, abort: AbortSignal): Promise<AgentLink> {
  let lastError: unknown;
  while (Date.now() < deadline && !abort.aborted) {
    if (!existsSync(socketPath)) {
      await sleep(5);
      continue;
    }
    try {
      return await handshake(socketPath, deadline, abort);
    } catch (error) {
      lastError = error;
      if (error instanceof TimeoutError) throw error;
      await sleep(20);
    }
  }
  throw new TimeoutError("the guest agent did not answer", { cause: lastError });
}

function handshake(socketPath: string, deadline: number, abort: AbortSignal): Promise<AgentLink> {
  return new Promise((resolve, reject) => {
    const socket = connect(socketPath);
    socket.setNoDelay?.(true);
    const nonce = randomBytes(12).toString("hex");
    let buffered = Buffer.alloc(0);
    let settled = false;
    const finish = (error: Error | undefined, link?: AgentLink) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      abort.removeEventListener("abort", onAbort);
      socket.removeAllListeners("data");
      if (error) {
        socket.destroy();
        reject(error);
      } else resolve(link!);
    };
    const onAbort = () => finish(new AgentUnavailableError("the sandbox stopped before its agent answered"));
    abort.addEventListener("abort", onAbort);
    const timer = setTimeout(() => finish(new TimeoutError("the guest agent did not answer")), Math.max(0, deadline - Date.now()));
    socket.once("error", (error) => finish(error));
    socket.once("close", () => finish(new AgentUnavailableError("the agent channel closed during the handshake")));
    socket.on("connect", () => {
      const hello = { protocol: 1, nonce, client: `smolvm-supervisor/${versionInfo().version}`, timeMs: Date.now() };
      socket.write(Buffer.alloc(RESYNC_PAD));
      socket.write(encodeFrame({ type: FrameType.HELLO, flags: 0, streamId: 0, payload: Buffer.from(JSON.stringify(hello)) }));
    });
    socket.on("data", (chunk: Buffer) => {
      buffered = Buffer.concat([buffered, chunk]);
      for (;;) {
        const at = buffered.indexOf(MAGIC_HELLO);
        if (at < 0) {
          // Keep a tail that may hold the start of the next header.
          buffered = buffered.subarray(Math.max(0, buffered.length - MAGIC_HELLO.length));
          return;
        }
        if (buffered.length < at + HEADER) return;
        const length = buffered.readUInt32BE(at + 12);
        if (length > 65536) {
          buffered = buffered.subarray(at + 1);
          continue;
        }
        if (buffered.length < at + HEADER + length) return;
        const payload = buffered.subarray(at + HEADER, at + HEADER + length);
        const rest = buffered.subarray(at + HEADER + length);
        try {
          const hello = JSON.parse(payload.toString("utf8")) as AgentHello;
          if (hello.nonce === nonce) {
            if (hello.protocol !== 1) {
              finish(new AgentUnavailableError(`the guest agent speaks protocol ${hello.protocol}, this smolvm speaks 1`, {
                hint: "rebuild the image with this smolvm version: smolvm image build NAME",
              }));
              return;
            }
            finish(undefined, { socket, hello, rest: Buffer.from(rest) });
            return;
          }
        } catch {
          // Not a HELLO of ours (or stale bytes that happen to look like one): keep hunting.
        }
        buffered = rest;
      }
    });
  });
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
