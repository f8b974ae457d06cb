/**
 * The host side of Firecracker's hybrid vsock: the guest listens on an AF_VSOCK port; the host
 * connects to the device's Unix socket (`uds_path`), sends `CONNECT <port>\n`, and Firecracker
 * answers `OK <n>\n` once the guest has accepted, where n is the host-side port Firecracker assigned
 * to the connection (not the guest port). From then on the socket is a plain byte stream to the
 * guest: here, the agent protocol.
 *
 * When nothing listens on that guest port yet (the guest is still booting) or its backlog is full,
 * Firecracker closes the connection without an answer: `waitForVsock` retries that until its
 * deadline. The acknowledgement line is read with a small cap, and bytes the guest sends right
 * after it are handed back with the stream, never lost.
 */
import { createConnection, type Socket } from "node:net";
import { setTimeout as sleep } from "node:timers/promises";
import { AgentUnavailableError, InvalidInputError, NotRunningError, SmolError, TimeoutError } from "../../errors.ts";

/** `OK ` + a u32 + newline is at most 14 bytes; anything longer is not Firecracker talking. */
const MAX_ACK_BYTES = 32;
export const VSOCK_CONNECT_TIMEOUT_MS = 5_000;

/** The guest closed (or never accepted) the connection: worth retrying while it boots. */
export class VsockRefusedError extends AgentUnavailableError {}

export interface VsockConnectOptions {
  /** Deadline for the connect and the acknowledgement. Default VSOCK_CONNECT_TIMEOUT_MS. */
  timeoutMs?: number;
}

/**
 * Opens one connection to guest port `port` through the vsock device's Unix socket at `udsPath`.
 * Resolves with the connected socket, positioned just after the acknowledgement.
 */
export function connectVsock(udsPath: string, port: number, options: VsockConnectOptions = {}): Promise<Socket> {
  if (!Number.isInteger(port) || port < 0 || port > 0xffff_ffff) {
    return Promise.reject(new InvalidInputError(`Cannot connect to vsock port ${port}: a port is an integer from 0 to 4294967295`));
  }
  const timeoutMs = options.timeoutMs ?? VSOCK_CONNECT_TIMEOUT_MS;
  const what = `Cannot connect to the guest's vsock port ${port} through "${udsPath}"`;
  return new Promise((resolve, reject) => {
    const socket = createConnection({ path: udsPath });
    let received = Buffer.alloc(0);
    let done = false;
    const finish = (error?: Error) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      socket.off("readable", onReadable);
      socket.off("close", onClose);
      socket.off("error", onError);
      if (error) {
        socket.destroy();
        reject(error);
      } else {
        resolve(socket);
      }
    };
    const timer = setTimeout(() => finish(new TimeoutError(`${what}: no acknowledgement within ${timeoutMs} ms`, {
      hint: "the guest agent may still be booting; see the sandbox's console log",
      details: { udsPath, port },
    })), timeoutMs);
    const onError = (error: NodeJS.ErrnoException) => {
      const why = error.code === "ENOENT"
        ? "the socket does not exist (Firecracker is not running, or the VM has no vsock device)"
        : error.code === "ECONNREFUSED" ? "nothing accepts connections on the socket" : error.message;
      finish(new NotRunningError(`${what}: ${why}`, { cause: error, details: { udsPath, port, code: error.code } }));
    };
    const onClose = () => finish(new VsockRefusedError(`${what}: the connection was closed before "OK"`, {
      hint: `nothing listens on vsock port ${port} in the guest yet (still booting?), or the guest agent is not running`,
      details: { udsPath, port },
    }));
    // Pulled with read() rather than 'data' events: once the 'readable' listener is gone the
    // socket is neither flowing nor paused, so the caller's own 'data' listener starts the flow
    // and sees the bytes put back with unshift first.
    const onReadable = () => {
      let chunk: Buffer | null;
      while (!done && (chunk = socket.read() as Buffer | null) !== null) {
        received = Buffer.concat([received, chunk]);
        const newline = received.indexOf(0x0a);
        if (newline < 0) {
          if (received.length > MAX_ACK_BYTES) finish(badAck(received));
          continue;
        }
        const line = received.subarray(0, newline).toString("latin1");
        if (newline > MAX_ACK_BYTES || !/^OK [0-9]{1,10}$/.test(line)) {
          finish(badAck(received.subarray(0, newline)));
          return;
        }
        const rest = received.subarray(newline + 1);
        finish();
        if (rest.length > 0) socket.unshift(rest);
        return;
      }
    };
    const badAck = (bytes: Buffer) => new AgentUnavailableError(
      `${what}: expected "OK <port>", got ${JSON.stringify(bytes.subarray(0, MAX_ACK_BYTES).toString("latin1"))}`,
      { hint: "something other than Firecracker's vsock device may be listening on that socket", details: { udsPath, port } },
    );
    socket.on("readable", onReadable);
    socket.on("close", onClose);
    socket.on("error", onError);
    socket.once("connect", () => socket.write(`CONNECT ${port}\n`));
  });
}

export interface WaitForVsockOptions {
  /** Overall deadline. Default 30 s (a boot under load). */
  timeoutMs?: number;
  /** Pause between attempts. Default 10 ms. */
  intervalMs?: number;
  /** Stop early when this settles: the VMM exited. */
  exited?: Promise<unknown>;
}

/**
 * Connects to guest port `port`, retrying while the guest is not listening yet (connection closed
 * before OK, or the socket not created yet) until the deadline.
 */
export async function waitForVsock(udsPath: string, port: number, options: WaitForVsockOptions = {}): Promise<Socket> {
  const timeoutMs = options.timeoutMs ?? 30_000;
  const deadline = Date.now() + timeoutMs;
  let gone = false;
  options.exited?.then(() => { gone = true; }, () => { gone = true; });
  let last: SmolError | undefined;
  while (true) {
    const remaining = deadline - Date.now();
    if (remaining <= 0) {
      throw new TimeoutError(`Cannot reach the guest agent on vsock port ${port}: not listening after ${timeoutMs} ms` +
        (last ? ` (last: ${last.message})` : ""), { hint: "see the sandbox's console log for how far the guest booted", details: { udsPath, port } });
    }
    try {
      return await connectVsock(udsPath, port, { timeoutMs: Math.min(remaining, VSOCK_CONNECT_TIMEOUT_MS) });
    } catch (error) {
      // An attempt cut short by the overall deadline ends in the overall timeout below.
      const cutShort = error instanceof TimeoutError && Date.now() >= deadline;
      const retry = error instanceof VsockRefusedError || (error instanceof SmolError && error.code === "NOT_RUNNING");
      if (!retry && !cutShort) throw error;
      if (retry) last = error as SmolError;
    }
    if (gone) {
      throw new NotRunningError(`Cannot reach the guest agent on vsock port ${port}: Firecracker exited`, {
        hint: "see the sandbox's vmm.log and console log", details: { udsPath, port },
      });
    }
    await sleep(options.intervalMs ?? 10);
  }
}
