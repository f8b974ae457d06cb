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
    const onData = (chunk: Buffer) => {
      buffer += chunk.toString("utf8");
      const newline = buffer.indexOf("\n");
      if (newline < 0) return;
      cleanup();
      try {
        const parsed = JSON.parse(buffer.slice(0, newline)) as { QMP?: QmpGreeting };
        if (!parsed.QMP) throw new Error("not a QMP greeting");
        resolve({ greeting: parsed.QMP, rest: buffer.slice(newline + 1) });
      } catch {
        socket.destroy();
        // What it said instead is kept: the one clue to what answered on QEMU's monitor socket.
        reject(new BackendUnavailableError(`Cannot connect to QEMU's monitor at "${socketPath}": it did not greet in QMP (it said: ${JSON.stringify(printable(buffer.slice(0, newline), 200))})`, { details: { socketPath } }));
      }
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
