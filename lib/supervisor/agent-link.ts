/**
 * The supervisor's own connection to the guest agent, over the channel its VMM provides. The
 * channel may hold half a frame of an earlier session (a supervisor that died mid-frame), so the
 * HELLO exchange resyncs when the backend says so (lib/agent/session.ts).
 */
import type { Duplex } from "node:stream";
import { greet } from "../agent/session.ts";
import type { Frame } from "../agent/frame.ts";
import type { AgentHello } from "../agent/messages.ts";
import type { Vmm } from "../backends/types.ts";
import { AgentUnavailableError, TimeoutError } from "../errors.ts";
import { pollUntil } from "../util/poll.ts";
import { versionInfo } from "../version.ts";

export interface AgentLink {
  socket: Duplex;
  hello: AgentHello;
  /** Routes every later frame from the agent to `handler` (frames that came early included). */
  onFrame(handler: (frame: Frame) => void, onError: (error: unknown) => void): void;
}

/**
 * Connects to the agent and completes the HELLO exchange, which the agent answers once the guest
 * is up. `beforeGreet` runs once the channel is open (a paused VM is resumed there: a guest that
 * wakes with the host already connected on its virtio port never sees it go, and wastes no poll
 * finding it back). Rejects with a TimeoutError at `deadline`, or an AgentUnavailableError when `abort`
 * fires (the VM ended first).
 */
export async function connectAgent(
  vmm: Vmm,
  deadline: number,
  abort: AbortSignal,
  options: { beforeGreet?: () => Promise<void> } = {},
): Promise<AgentLink> {
  // A channel that cannot be opened yet (Firecracker's vsock before the guest listens) is tried
  // again until the deadline; QEMU's is there as soon as QEMU is.
  let lastError: unknown;
  // `beforeGreet` runs once the channel is open, or once it failed to open (a vsock needs a
  // running guest to accept).
  let ran: Promise<void> | undefined;
  const runOnce = () => (ran ??= options.beforeGreet?.() ?? Promise.resolve());
  const transport = await pollUntil(() => vmm.openAgent({ timeoutMs: Math.max(1, deadline - Date.now()), signal: abort }).catch(async (error: unknown) => {
    lastError = error;
    await runOnce();
    return undefined;
  }), {
    timeoutMs: Math.max(1, deadline - Date.now()),
    intervalMs: 20,
    signal: abort,
    what: "the guest agent's channel",
    onTimeout: () => new TimeoutError("the guest agent's channel did not open", { cause: lastError }),
  }).catch((error: unknown) => {
    if (abort.aborted) throw new AgentUnavailableError("the VM stopped before its agent answered", { cause: error });
    throw error;
  });
  const early: Frame[] = [];
  let handler: ((frame: Frame) => void) | undefined;
  let errorHandler: ((error: unknown) => void) | undefined;
  try {
    await runOnce();
    const hello = await greet(transport.socket, {
      client: `smolvm-supervisor/${versionInfo().version}`,
      resync: transport.resync,
      timeMs: Date.now(),
      timeoutMs: Math.max(1, deadline - Date.now()),
      signal: abort,
      onFrame: (frame) => (handler ? handler(frame) : early.push(frame)),
      onProtocolError: (error) => errorHandler?.(error),
    });
    return {
      socket: transport.socket,
      hello,
      onFrame(next, onError) {
        handler = next;
        errorHandler = onError;
        for (const frame of early.splice(0)) next(frame);
      },
    };
  } catch (error) {
    transport.socket.destroy();
    if (abort.aborted) throw new AgentUnavailableError("the VM stopped before its agent answered", { cause: error });
    // No answer by the deadline; anything else (a protocol mismatch) says what it is itself.
    if ((error as Error).cause instanceof TimeoutError) throw new TimeoutError("the guest agent did not answer", { cause: error });
    throw error;
  }
}
