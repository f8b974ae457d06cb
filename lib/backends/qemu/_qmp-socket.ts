/**
 * The connection half of the QMP client: opening the Unix socket and reading QEMU's greeting.
 */
import { createConnection, type Socket } from "node:net";
import { BackendUnavailableError, smolError, type ErrorCode } from "../../errors.ts";
import type { QmpGreeting } from "./qmp.ts";
import { printable } from "../../util/printable.ts";

export function openSocket(path: string, timeoutMs: number): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const socket = createConnection({ path });
    const timer = setTimeout(() => {
      socket.destroy();
      reject(Object.assign(new Error("connect timed out"), { code: "ETIMEDOUT" }));
    }, timeoutMs);
    socket.once("connect", () => {
      clearTimeout(timer);
      socket.removeAllListeners("error");
      resolve(socket);
    });
    socket.once("error", (error) => {
      clearTimeout(timer);
      socket.destroy();
      reject(error);
    });
  });
}

/**
 * Most of what QEMU may send before the greeting: output meant for the monitor's previous client.
 * QEMU does not drop a client's pending output when it hangs up, so the next client can read the
 * end of that session (a command's return, an event such as RESUME) before its own greeting.
 */
const MAX_STALE_BYTES = 64 * 1024;

export function readGreeting(
  socket: Socket,
  socketPath: string,
  timeoutMs: number,
): Promise<{ greeting: QmpGreeting; rest: string }> {
  return new Promise((resolve, reject) => {
    let buffer = "";
    const fail = (code: ErrorCode, why: string, hint?: string) => {
      cleanup();
      socket.destroy();
      reject(smolError(code, `Cannot connect to QEMU's monitor at "${socketPath}": ${why}`, {
        ...(hint === undefined ? {} : { hint }),
        details: { socketPath },
      }));
    };
    let skipped = 0;
    const notQmp = (said: string) => {
      cleanup();
      socket.destroy();
      // What it said instead is kept: the one clue to what answered on QEMU's monitor socket.
      reject(new BackendUnavailableError(`Cannot connect to QEMU's monitor at "${socketPath}": it did not greet in QMP (it said: ${JSON.stringify(printable(said, 200))})`, { details: { socketPath } }));
    };
    const onData = (chunk: Buffer) => {
      buffer += chunk.toString("utf8");
      let newline: number;
      while ((newline = buffer.indexOf("\n")) >= 0) {
        const line = buffer.slice(0, newline);
        let parsed: { QMP?: QmpGreeting; event?: unknown; return?: unknown; error?: unknown } | undefined;
        try {
          parsed = JSON.parse(line) as typeof parsed;
        } catch {
          return notQmp(line);
        }
        if (parsed?.QMP !== undefined) {
          cleanup();
          return resolve({ greeting: parsed.QMP, rest: buffer.slice(newline + 1) });
        }
        // The previous client's event or reply (see MAX_STALE_BYTES): not ours, passed over.
        const stale = typeof parsed === "object" && parsed !== null && ("event" in parsed || "return" in parsed || "error" in parsed);
        skipped += newline + 1;
        if (!stale || skipped > MAX_STALE_BYTES) return notQmp(line);
        buffer = buffer.slice(newline + 1);
      }
      if (skipped + buffer.length > MAX_STALE_BYTES) notQmp(buffer);
    };
    const onClose = () => fail("NOT_RUNNING", "QEMU hung up before greeting");
    const timer = setTimeout(() => fail("TIMEOUT", `no greeting within ${Math.max(0, Math.round(timeoutMs))} ms`,
      "another client may be attached to the monitor (QEMU serves one at a time)"), Math.max(1, timeoutMs));
    const cleanup = () => {
      clearTimeout(timer);
      socket.pause(); // hold what follows the greeting until the client listens

      socket.off("data", onData);
      socket.off("close", onClose);
    };
    socket.on("data", onData);
    socket.on("close", onClose);
    socket.on("error", () => {});
  });
}
