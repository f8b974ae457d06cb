/**
 * The streaming transfers of AgentClient: file write and read, and TCP port forwards. Each is
 * one stream with credit-managed channels (see _channels.ts).
 */
import { Duplex, Readable } from "node:stream";
import { InboundChannel, OutboundChannel } from "./_channels.ts";
import type { StreamLink, StreamSink } from "./_exec.ts";
import { guard, STREAM_HWM, validate } from "./_util.ts";
import { Channel } from "./frame.ts";
import { SizeResult } from "./messages.ts";
import type { CallOptions, FileStream, AgentWriteOptions } from "./types.ts";

/** What a transfer needs from the connection. */
export interface StreamHost {
  readonly window: number;
  allocId(): number;
  link(id: number): StreamLink;
  open(id: number, body: string, sink: StreamSink): void;
}

/** Writes a file atomically (temp file + rename in the guest). */
export async function writeFile(
  host: StreamHost,
  path: string,
  data: string | Uint8Array | Readable | AsyncIterable<Uint8Array>,
  options: AgentWriteOptions = {},
): Promise<{ size: number }> {
  const body = validate({
    op: "writeFile",
    path,
    ...(options.mode === undefined ? {} : { mode: options.mode }),
    ...(options.mkdirParents ? { mkdirParents: true } : {}),
  });
  options.signal?.throwIfAborted();
  return new Promise((resolve, reject) => {
    const id = host.allocId();
    const link = host.link(id);
    const output = new OutboundChannel(link, host.window);
    let settled = false;
    const finish = (error: unknown, value?: { size: number }) => {
      if (settled) return;
      settled = true;
      disarm();
      output.fail(error ?? new Error("finished"));
      if (error) reject(error);
      else resolve(value!);
    };
    const disarm = guard(options, `Cannot write "${path}"`, (e) => {
      link.cancel();
      finish(e);
    });
    host.open(id, body, {
      op: "writeFile",
      onWindow: (ch, n) => ch === Channel.IN && output.addCredit(n),
      onEnd: (result, error) => finish(error, error ? undefined : SizeResult.parse(result)),
    });
    (async () => {
      if (typeof data === "string" || data instanceof Uint8Array) {
        await output.write(typeof data === "string" ? Buffer.from(data) : data);
      } else {
        for await (const chunk of data as AsyncIterable<Uint8Array | string>) {
          await output.write(typeof chunk === "string" ? Buffer.from(chunk) : chunk);
        }
      }
      output.end();
    })().catch((error: unknown) => {
      // A failure the agent reported arrives through onEnd; anything else is the source's.
      if (!output.failed) {
        link.cancel();
        finish(error);
      }
    });
  });
}

/** Opens a guest file for reading; resolves with its size and mode once it is open. */
export async function readFile(host: StreamHost, path: string, options: CallOptions = {}): Promise<FileStream> {
  const body = validate({ op: "readFile", path });
  options.signal?.throwIfAborted();
  return new Promise((resolve, reject) => {
    const id = host.allocId();
    const link = host.link(id);
    const channel = new InboundChannel((n) => link.grant(Channel.OUT, n), host.window);
    const stream = new Readable({ highWaterMark: STREAM_HWM, read: () => channel.pull() });
    channel.attach(stream);
    let opened = false;
    let ended = false;
    const end = (error: unknown) => {
      if (ended) return;
      ended = true;
      disarm();
      if (!error) return;
      if (opened) stream.destroy(error instanceof Error ? error : new Error(String(error)));
      else reject(error);
    };
    const disarm = guard(options, `Cannot read "${path}"`, (e) => {
      link.cancel();
      end(e);
    });
    host.open(id, body, {
      op: "readFile",
      onEvent: (ev) => {
        if (ev.event !== "file") return;
        opened = true;
        resolve({ size: ev.size, mode: ev.mode, stream });
      },
      onData: (ch, data, fin) => {
        if (ch !== Channel.OUT) return;
        channel.push(data);
        if (fin) channel.end();
      },
      onEnd: (_result, error) => end(error),
    });
  });
}

/** A byte stream to a TCP port inside the guest; end() half-closes it. */
export async function forward(
  host: StreamHost,
  port: number,
  options: CallOptions & { host?: string } = {},
): Promise<Duplex> {
  const body = validate({ op: "forward", port, ...(options.host ? { host: options.host } : {}) });
  options.signal?.throwIfAborted();
  return new Promise((resolve, reject) => {
    const id = host.allocId();
    const link = host.link(id);
    const inbound = new InboundChannel((n) => link.grant(Channel.OUT, n), host.window);
    const outbound = new OutboundChannel(link, host.window);
    let connected = false;
    let ended = false;
    const duplex = new Duplex({
      readableHighWaterMark: STREAM_HWM,
      writableHighWaterMark: STREAM_HWM,
      read: () => inbound.pull(),
      write: (chunk: Buffer, _enc, cb) => outbound.write(chunk).then(() => cb(), cb),
      final: (cb) => {
        outbound.end();
        cb();
      },
      destroy: (error, cb) => {
        if (!ended) {
          ended = true;
          link.cancel();
        }
        outbound.fail(error ?? new Error("forward closed"));
        cb(error);
      },
    });
    inbound.attach(duplex);
    const disarm = guard(options, `Cannot connect to port ${port} in the guest`, (e) => {
      if (connected) return;
      ended = true;
      link.cancel();
      reject(e);
    });
    host.open(id, body, {
      op: "forward",
      onEvent: (ev) => {
        if (ev.event !== "connected") return;
        connected = true;
        disarm();
        resolve(duplex);
      },
      onData: (ch, data, fin) => {
        if (ch !== Channel.OUT) return;
        inbound.push(data);
        if (fin) inbound.end();
      },
      onWindow: (ch, n) => ch === Channel.IN && outbound.addCredit(n),
      onEnd: (_result, error) => {
        ended = true;
        disarm();
        if (!error) {
          outbound.close();
          return;
        }
        outbound.fail(error);
        if (connected) duplex.destroy(error);
        else reject(error);
      },
    });
  });
}
