/**
 * The HELLO exchange that opens every agent-protocol session (PROTOCOL.md, "HELLO"): SDK and CLI
 * clients of a supervisor, the supervisor's own link to the guest agent, and the tests all go
 * through `greet`, so there is one resync rule, one version check and one schema for the answer.
 *
 * A supervisor answers a client's HELLO only once its sandbox is ready (the agent answered), and
 * answers with an ERROR instead when the boot failed: HELLO means ready, an ERROR on stream 0
 * carries the code and the reason.
 */
import { AgentUnavailableError, fromWire, isErrorCode, TimeoutError, type SmolError } from "../errors.ts";
import { randomHex } from "../util/random.ts";
import { agentError } from "./_errors.ts";
import { encodeFrame, FrameDecoder, FrameType, RESYNC_PAD_SIZE, type Frame } from "./frame.ts";
import { AgentErrorPayload, AgentHello, HostHello, PROTOCOL } from "./messages.ts";
import type { ByteStream } from "./types.ts";

export interface GreetOptions {
  /** Who is asking, for the peer's log: `smolvm/0.1.0`, `smolvm-supervisor/0.1.0`. */
  client: string;
  /** Echoed by the peer; random by default. */
  nonce?: string;
  /**
   * Pad first and hunt for our HELLO's answer: for a virtio port whose previous host may have
   * left half a frame behind (PROTOCOL.md, "Reconnecting mid-stream").
   */
  resync?: boolean;
  /** Ask a PID-1 agent to set its clock (ms since the epoch) while answering. */
  timeMs?: number;
  /** How long to wait for the answer (default 10 000 ms). */
  timeoutMs?: number;
  signal?: AbortSignal;
  /**
   * The peer is a sandbox's supervisor, which composed its answer from an agent HELLO it checked
   * against the schema and its own part: only what the client relies on is looked at
   * (AgentConnectOptions.supervised).
   */
  supervised?: boolean;
  /**
   * The answer, the moment it is read: before the frames that came in the same read go to
   * `onFrame` (the promise resolves only after them).
   */
  onGreeted?(hello: AgentHello): void;
  /** Every frame after the greeting, in order. A throw is reported to `onProtocolError`. */
  onFrame(frame: Frame): void;
  /** The byte stream broke the protocol after the greeting (a framing error, a bad message). */
  onProtocolError(error: unknown): void;
}

/**
 * Sends HELLO on `socket` and resolves with the peer's schema-checked answer to our nonce. Until
 * then, on a resyncing session, everything else is a leftover of an earlier session and is
 * skipped; on a fresh one, an ERROR is the peer's refusal and rejects with it.
 */
export function greet(socket: ByteStream, options: GreetOptions): Promise<AgentHello> {
  const resync = options.resync === true;
  const nonce = options.nonce ?? randomHex(12);
  const timeoutMs = options.timeoutMs ?? 10_000;
  const decoder = new FrameDecoder({ hunt: resync });
  let greeted = false;
  let settle: ((error: SmolError | undefined, hello?: AgentHello) => void) | undefined;

  const beforeGreeting = (frame: Frame) => {
    if (frame.streamId !== 0) {
      // On a fresh session, the answer to a request sent behind the HELLO (a peer that does not
      // take those refuses them before it answers); on a resynced one, a leftover of the last.
      if (!resync) options.onFrame(frame);
      return;
    }
    if (frame.type === FrameType.ERROR && !resync) {
      const body = json(frame);
      const parsed = options.supervised === true ? supervisorMessage<AgentErrorPayload>(body, ["code", "message"]) : AgentErrorPayload.safeParse(body);
      if (!parsed.success) return settle?.(new AgentUnavailableError("The peer refused the HELLO with a malformed ERROR"));
      return settle?.(isErrorCode(parsed.data.code) ? fromWire(body as Record<string, unknown>) : agentError(parsed.data, "HELLO"));
    }
    if (frame.type !== FrameType.HELLO) return;
    const parsed = options.supervised === true ? supervisorMessage<AgentHello>(json(frame), ["nonce", "protocol", "limits", "supervisor"]) : AgentHello.safeParse(json(frame));
    if (!parsed.success) {
      if (!resync) settle?.(new AgentUnavailableError(`The peer answered HELLO with an invalid message: ${parsed.error.issues[0]?.message}`));
      return;
    }
    if (parsed.data.nonce !== nonce) return;
    if (parsed.data.protocol !== PROTOCOL) {
      return settle?.(new AgentUnavailableError(`The guest agent speaks protocol ${parsed.data.protocol}, this smolvm ${PROTOCOL}`, {
        hint: "rebuild the sandbox image with this smolvm: smolvm image build NAME --force",
      }));
    }
    greeted = true;
    options.onGreeted?.(parsed.data);
    settle?.(undefined, parsed.data);
  };

  const onData = (chunk: Buffer) => {
    try {
      decoder.push(chunk, (frame) => {
        if (greeted) options.onFrame(frame);
        else beforeGreeting(frame);
      }, (error) => {
        if (greeted) options.onProtocolError(error);
        else if (!resync) settle?.(new AgentUnavailableError(`The peer broke the protocol during the HELLO exchange: ${error.message}`));
      });
    } catch (error) {
      options.onProtocolError(error);
    }
  };

  return new Promise<AgentHello>((resolve, reject) => {
    const onAbort = () => settle?.(options.signal!.reason as SmolError);
    const onClose = () => settle?.(new AgentUnavailableError("The connection closed during the HELLO exchange", {
      hint: "the sandbox may have stopped; check its status and console log",
    }));
    const timer = setTimeout(() => settle?.(new AgentUnavailableError(`No answer to HELLO within ${timeoutMs} ms`, {
      hint: "the guest may still be booting, or its image has no smolvm agent",
      cause: new TimeoutError(`no HELLO within ${timeoutMs} ms`),
    })), timeoutMs);
    settle = (error, hello) => {
      settle = undefined;
      clearTimeout(timer);
      options.signal?.removeEventListener("abort", onAbort);
      socket.off("close", onClose);
      socket.off("end", onClose);
      if (error) {
        socket.off("data", onData);
        reject(error);
      } else resolve(hello!);
    };
    if (options.signal?.aborted) return onAbort();
    options.signal?.addEventListener("abort", onAbort, { once: true });
    socket.on("data", onData);
    socket.once("close", onClose);
    socket.once("end", onClose);
    socket.on("error", () => {}); // 'close' follows
    const ours: HostHello = {
      protocol: PROTOCOL,
      nonce,
      client: options.client,
      ...(options.timeMs === undefined ? {} : { timeMs: Math.round(options.timeMs) }),
    };
    // A supervisor checks it against the schema itself.
    const hello = options.supervised === true ? ours : HostHello.parse(ours);
    if (resync) socket.write(Buffer.alloc(RESYNC_PAD_SIZE));
    socket.write(encodeFrame(FrameType.HELLO, 0, JSON.stringify(hello)));
  });
}

/**
 * A message a supervisor made (from what it checked): an object with the fields a client relies
 * on, in zod's result shape; its own bug, not a guest's lie, if it is not.
 */
function supervisorMessage<T>(body: unknown, fields: readonly string[]): { success: true; data: T } | { success: false; error: { issues: { message: string }[] } } {
  const missing = typeof body !== "object" || body === null ? "an object" : fields.find((field) => !(field in body));
  return missing === undefined ? { success: true, data: body as T } : { success: false, error: { issues: [{ message: `expected ${missing}` }] } };
}

function json(frame: Frame): unknown {
  try {
    return JSON.parse(frame.payload.toString("utf8"));
  } catch {
    return undefined;
  }
}
