/**
 * The QMP client against a stand-in monitor that says exactly what a test wants: what came
 * before the greeting, and replies meant for another client.
 */
import { afterAll, expect, test } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { createServer, type Server, type Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { QmpClient } from "../../../../lib/backends/qemu/qmp.ts";
import type { SmolError } from "../../../../lib/errors.ts";

const dir = mkdtempSync(join(tmpdir(), "smolvm-qmp-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const GREETING = `${JSON.stringify({ QMP: { version: { qemu: { major: 9, minor: 2, micro: 0 } }, capabilities: [] } })}\n`;
let sockets = 0;

/** A monitor that sends `before` on connecting, then answers every command with `answer(id)`. */
async function monitor(before: string, answer: (id: unknown, command: string) => string): Promise<{ path: string; server: Server }> {
  const path = join(dir, `m${sockets++}.sock`);
  const server = createServer((socket: Socket) => {
    socket.write(before);
    let buffer = "";
    socket.on("data", (chunk) => {
      buffer += chunk.toString();
      let newline: number;
      while ((newline = buffer.indexOf("\n")) >= 0) {
        const request = JSON.parse(buffer.slice(0, newline)) as { execute: string; id: unknown };
        buffer = buffer.slice(newline + 1);
        socket.write(answer(request.id, request.execute));
      }
    });
    socket.on("error", () => {});
  });
  await new Promise<void>((resolve) => server.listen(path, resolve));
  return { path, server };
}

const reply = (id: unknown, value: unknown = {}) => `${JSON.stringify({ return: value, id })}\n`;

test("what the previous client left before the greeting is passed over", async () => {
  const stale = `{"return": {}, "id": 2}\n{"timestamp": {"seconds": 1, "microseconds": 2}, "event": "RESUME"}\n{"error": {"class": "GenericError", "desc": "x"}, "id": 3}\n`;
  const { path, server } = await monitor(stale + GREETING, (id, command) => reply(id, command === "query-status" ? { status: "running", running: true } : {}));
  const qmp = await QmpClient.connect(path);
  expect(qmp.greeting.version.qemu.major).toBe(9);
  expect(await qmp.queryStatus()).toEqual({ status: "running", running: true });
  qmp.destroy();
  server.close();
});

test("a reply with another client's id is not taken for the answer to ours", async () => {
  // Every command is first answered with the ids a plain counter would use, then truly.
  const { path, server } = await monitor(GREETING, (id, command) =>
    [1, 2, 3].map((n) => reply(n, { status: "stale", running: false })).join("") + reply(id, command === "query-status" ? { status: "paused", running: false } : {}));
  const qmp = await QmpClient.connect(path);
  expect(await qmp.queryStatus()).toEqual({ status: "paused", running: false });
  qmp.destroy();
  server.close();
});

test("a socket that answers with something that is not QMP is refused, saying what it said", async () => {
  const { path, server } = await monitor("SSH-2.0-OpenSSH_9.2\n", () => "");
  const error = (await QmpClient.connect(path, { timeoutMs: 2_000 }).catch((e: unknown) => e)) as SmolError;
  expect(error.code).toBe("BACKEND_UNAVAILABLE");
  expect(error.message).toContain("did not greet in QMP");
  expect(error.message).toContain("SSH-2.0");
  server.close();
});

test("JSON that is neither a greeting nor a reply or event is refused", async () => {
  const { path, server } = await monitor(`{"hello": "world"}\n${GREETING}`, (id) => reply(id));
  const error = (await QmpClient.connect(path, { timeoutMs: 2_000 }).catch((e: unknown) => e)) as SmolError;
  expect(error.code).toBe("BACKEND_UNAVAILABLE");
  expect(error.message).toContain("hello");
  server.close();
});

test("endless output before a greeting is cut off at its bound, not buffered", async () => {
  const event = `{"timestamp": {"seconds": 1, "microseconds": 2}, "event": "RESUME"}\n`;
  const { path, server } = await monitor(event.repeat(Math.ceil((80 * 1024) / event.length)) + GREETING, (id) => reply(id));
  const error = (await QmpClient.connect(path, { timeoutMs: 2_000 }).catch((e: unknown) => e)) as SmolError;
  expect(error.code).toBe("BACKEND_UNAVAILABLE");
  expect(error.message).toContain("did not greet in QMP");
  server.close();
});
