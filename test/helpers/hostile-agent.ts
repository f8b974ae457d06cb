/**
 * A guest agent that attacks its host, for the host's defences to be tested against: it speaks
 * the agent protocol (guest-agent/PROTOCOL.md) on a Unix socket like the native test-mode agent
 * (`--listen unix:PATH`), answers HELLO like a sound agent, and then misbehaves as `--mode` says:
 *
 * - `flood`: answers an exec with "started" and then sends stdout without waiting for credit;
 * - `flood-idle`: sends data on streams nobody opened, as fast as the socket takes it;
 * - `events`: answers an exec with an endless run of "started" events (events carry no credit);
 * - `oversized`: answers an exec with a frame header claiming 16 MiB of payload;
 * - `mistyped`: answers an exec with "started" and a RESULT whose fields have the wrong types;
 * - `wrong-channel`: answers an exec with data on channel 0, which only the host writes;
 * - `silent`: answers nothing after HELLO, ever;
 * - `slow`: answers every request correctly, but `--delay-ms` late (default 4000).
 *
 * An exec that a sound answer is given to (`slow`) runs nothing: its "output" is its argv joined.
 */
import { createServer, type Socket } from "node:net";
import { rmSync } from "node:fs";
import { dataFlags, encodeFrame, FrameDecoder, FrameType, MAX_PAYLOAD, type Frame } from "../../lib/agent/frame.ts";

const MODES = ["flood", "flood-idle", "events", "oversized", "mistyped", "wrong-channel", "silent", "slow"] as const;
export type HostileMode = (typeof MODES)[number];

const args = process.argv.slice(2);
const option = (name: string) => {
  const at = args.indexOf(name);
  return at >= 0 ? args[at + 1] : undefined;
};
const listen = option("--listen")?.replace(/^unix:/, "");
const mode = option("--mode") as HostileMode | undefined;
const delayMs = Number(option("--delay-ms") ?? 4000);
if (listen === undefined || mode === undefined || !MODES.includes(mode)) {
  console.error(`usage: hostile-agent --listen unix:PATH --mode ${MODES.join("|")} [--delay-ms N]`);
  process.exit(2);
}

const HELLO = (nonce: string) => ({
  protocol: 1, agentVersion: "0.1.0-hostile", nonce, arch: "x86_64", pid1: false, bootTimeMs: 1,
  capabilities: ["exec", "files", "env", "forward", "shutdown"],
  limits: { maxFrame: MAX_PAYLOAD, initialWindow: 262144, maxStreams: 1024 },
});

const json = (frame: Frame): Record<string, unknown> => JSON.parse(frame.payload.toString("utf8"));

/** Writes as fast as the socket drains, forever (until it closes). */
function pour(socket: Socket, next: () => Buffer): void {
  const go = () => {
    while (!socket.destroyed) {
      if (!socket.write(next())) return void socket.once("drain", go);
    }
  };
  go();
}

function serve(socket: Socket): void {
  const decoder = new FrameDecoder();
  const send = (type: number, stream: number, body?: unknown, flags = 0) => {
    if (!socket.destroyed) socket.write(encodeFrame(type, stream, body === undefined ? undefined : typeof body === "string" || body instanceof Uint8Array ? body : JSON.stringify(body), flags));
  };
  const chunk = Buffer.alloc(MAX_PAYLOAD, 0x7a);
  socket.on("error", () => {});
  socket.on("data", (bytes: Buffer) => decoder.push(bytes, (frame) => {
    if (frame.type === FrameType.HELLO) {
      send(FrameType.HELLO, 0, HELLO(String(json(frame).nonce)));
      if (mode === "flood-idle") {
        let stream = 1000;
        pour(socket, () => encodeFrame(FrameType.DATA, stream++, chunk, dataFlags(1)));
      }
      return;
    }
    if (frame.type !== FrameType.OPEN) return;
    const id = frame.streamId;
    const request = json(frame);
    if (mode === "silent" || mode === "flood-idle") return;
    if (mode === "slow") return void setTimeout(() => answer(id, request), delayMs);
    if (request.op !== "exec") return answer(id, request);
    switch (mode) {
      case "flood":
        send(FrameType.EVENT, id, { event: "started", pid: 4242 });
        return pour(socket, () => encodeFrame(FrameType.DATA, id, chunk, dataFlags(1)));
      case "events":
        return pour(socket, () => encodeFrame(FrameType.EVENT, id, JSON.stringify({ event: "started", pid: 4242 })));
      case "oversized": {
        const header = encodeFrame(FrameType.DATA, id, undefined, dataFlags(1));
        header.writeUInt32BE(16 * 1024 * 1024, 12);
        socket.write(header);
        return pour(socket, () => chunk);
      }
      case "mistyped":
        send(FrameType.EVENT, id, { event: "started", pid: 4242 });
        return send(FrameType.RESULT, id, { exitCode: "zero", signal: 9, timedOut: "no", durationMs: -1 });
      case "wrong-channel":
        send(FrameType.EVENT, id, { event: "started", pid: 4242 });
        return send(FrameType.DATA, id, "sneaky", dataFlags(0));
    }
  }));

  /** A sound answer to a request (the `slow` mode's, and any op but exec in the others). */
  function answer(id: number, request: Record<string, unknown>): void {
    switch (request.op) {
      case "exec": {
        const argv = Array.isArray(request.argv) ? request.argv.map(String) : [String(request.shell)];
        send(FrameType.EVENT, id, { event: "started", pid: 4242 });
        send(FrameType.DATA, id, `${argv.join(" ")}\n`, dataFlags(1));
        send(FrameType.DATA, id, "", dataFlags(1, true));
        send(FrameType.DATA, id, "", dataFlags(2, true));
        return send(FrameType.RESULT, id, { exitCode: 0, signal: null, timedOut: false, durationMs: delayMs });
      }
      case "ping":
        return send(FrameType.RESULT, id, { timeMs: Date.now(), bootTimeMs: 1 });
      case "env.set":
      case "env.list":
        return send(FrameType.RESULT, id, { vars: {} });
      case "shutdown":
        send(FrameType.RESULT, id, { synced: true });
        return void setTimeout(() => process.exit(0), 10);
      default:
        return send(FrameType.ERROR, id, { code: "UNKNOWN_OP", message: `no ${String(request.op)} here` });
    }
  }
}

rmSync(listen, { force: true });
const server = createServer(serve);
server.listen(listen, () => console.error("smolvm-agent: ready"));
process.on("SIGTERM", () => process.exit(0));
