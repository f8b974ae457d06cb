/**
 * The supervisor's own connection to the guest agent over the VMM's chardev socket.
 *
 * A virtio-serial port outlives its host side: a supervisor that died may have left the agent
 * in the middle of a frame, and the bytes waiting for us may start mid-frame too. So the
 * handshake always resyncs (PROTOCOL.md, "Reconnecting mid-stream"): pad, HELLO with a fresh
 * nonce, and skip everything until the HELLO that echoes it.
 */
import { existsSync } from "node:fs";
import { connect, type Socket } from "node:net";
import { setTimeout as sleep } from "node:timers/promises";
import { AgentUnavailableError, TimeoutError } from "../errors.ts";
import { versionInfo } from "../version.ts";
import { encodeFrame, FrameDecoder, FrameType, RESYNC_PAD_SIZE, type Frame } from "../agent/frame.ts";
import type { AgentHello } from "../agent/messages.ts";
import { randomHex } from "../util/random.ts";

export interface AgentLink {
  socket: Socket;
  hello: AgentHello;
  /** Routes every later frame from the agent to `handler` (frames that came early included). */
  onFrame(handler: (frame: Frame) => void, onError: (error: Error) => void): void;
}

/**
 * Connects and completes the handshake, retrying while the VMM starts. The agent answers only
 * once the guest is up. Rejects with a TimeoutError at `deadline`, or when `abort` fires.
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
      if (error instanceof TimeoutError || abort.aborted) break;
      await sleep(20);
    }
  }
  if (abort.aborted) throw new AgentUnavailableError("the VM stopped before its agent answered", { cause: lastError });
  throw new TimeoutError("the guest agent did not answer", { cause: lastError });
}

function handshake(socketPath: string, deadline: number, abort: AbortSignal): Promise<AgentLink> {
  return new Promise((resolve, reject) => {
    const socket = connect(socketPath);
    const nonce = randomHex(12);
    const decoder = new FrameDecoder({ hunt: true });
    const early: Frame[] = [];
    let handler: ((frame: Frame) => void) | undefined;
    let errorHandler: ((error: Error) => void) | undefined;
    let greeted = false;
    let settled = false;

    const finish = (error: Error | undefined, link?: AgentLink) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      abort.removeEventListener("abort", onAbort);
      if (error) {
        socket.destroy();
        reject(error);
      } else resolve(link!);
    };
    const onAbort = () => finish(new AgentUnavailableError("the VM stopped before its agent answered"));
    abort.addEventListener("abort", onAbort);
    const timer = setTimeout(() => finish(new TimeoutError("the guest agent did not answer")), Math.max(0, deadline - Date.now()));

    const link: AgentLink = {
      socket,
      hello: undefined as unknown as AgentHello,
      onFrame(next, onError) {
        handler = next;
        errorHandler = onError;
        for (const frame of early.splice(0)) next(frame);
      },
    };
    const onFrame = (frame: Frame) => {
      if (greeted) {
        if (handler) handler(frame);
        else early.push(frame);
        return;
      }
      // Before our HELLO comes back, everything is a leftover of an earlier session.
      if (frame.type !== FrameType.HELLO) return;
      let hello: AgentHello;
      try {
        hello = JSON.parse(frame.payload.toString("utf8")) as AgentHello;
      } catch {
        return;
      }
      if (hello.nonce !== nonce) return;
      if (hello.protocol !== 1) {
        finish(new AgentUnavailableError(`the guest agent speaks protocol ${hello.protocol}, this smolvm speaks 1`, {
          hint: "rebuild the image with this smolvm: smolvm image build NAME --force",
        }));
        return;
      }
      greeted = true;
      link.hello = hello;
      finish(undefined, link);
    };
    socket.on("data", (chunk: Buffer) =>
      decoder.push(chunk, onFrame, (error) => {
        if (greeted) errorHandler?.(error);
      }),
    );
    socket.once("error", (error) => finish(error));
    socket.once("close", () => finish(new AgentUnavailableError("the agent channel closed during the handshake")));
    socket.on("connect", () => {
      socket.setNoDelay?.(true);
      const hello = { protocol: 1, nonce, client: `smolvm-supervisor/${versionInfo().version}`, timeMs: Date.now() };
      socket.write(Buffer.alloc(RESYNC_PAD_SIZE));
      socket.write(encodeFrame(FrameType.HELLO, 0, JSON.stringify(hello)));
    });
  });
}
