/**
 * A real HTTP server on 127.0.0.1 serving a published-image release directory (what `smolvm
 * release build` writes), with HTTP Range support and the faults the published-image tests
 * need, switched per path at run time.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import { readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import type { AddressInfo } from "node:net";

export type Fault =
  /** Send the first `afterBytes` bytes, then nothing more (the connection stays open). */
  | { kind: "stall"; afterBytes: number }
  /** Say the full length, send `bytes`, then close the connection. */
  | { kind: "cut"; afterBytes: number }
  /** Serve the file with one byte flipped at `offset`. */
  | { kind: "corrupt"; offset: number }
  /** Serve only the first `bytes` bytes (a short file, honestly labelled). */
  | { kind: "truncate"; bytes: number }
  /** Serve extra bytes after the file (an honestly labelled longer file, or with `unlabelled`, chunked without a length). */
  | { kind: "append"; bytes: number; unlabelled?: boolean }
  /** Redirect to itself forever. */
  | { kind: "redirect-loop" }
  /** Redirect once to `to` (a path on this server). */
  | { kind: "redirect"; to: string }
  /** Send `bytesPerTick` bytes every `tickMs` (a slow link). */
  | { kind: "slow"; bytesPerTick: number; tickMs: number }
  /** Ignore Range headers: always 200 with the whole file. */
  | { kind: "no-range" }
  /** Serve these bytes instead of the file. */
  | { kind: "body"; bytes: Uint8Array }
  | { kind: "status"; status: number };

export interface ImageMirror {
  url: string;
  /** Requests per path (with the Range header each asked for, or null). */
  requests: Map<string, (string | null)[]>;
  faults: Map<string, Fault>;
  /** How many requests asked for `path` (e.g. "/base-x86_64.ext4.zst"). */
  count(path: string): number;
  close(): Promise<void>;
}

export async function serveImageMirror(dir: string): Promise<ImageMirror> {
  const requests = new Map<string, (string | null)[]>();
  const faults = new Map<string, Fault>();
  const open = new Set<ServerResponse>();
  const server: Server = createServer((req: IncomingMessage, res: ServerResponse) => {
    open.add(res);
    res.on("close", () => open.delete(res));
    const path = decodeURIComponent(new URL(req.url ?? "/", "http://x").pathname);
    const list = requests.get(path) ?? [];
    list.push(req.headers.range ?? null);
    requests.set(path, list);
    const fault = faults.get(path);
    if (fault?.kind === "redirect-loop") return void res.writeHead(302, { location: path }).end();
    if (fault?.kind === "redirect") return void res.writeHead(302, { location: fault.to }).end();
    if (fault?.kind === "status") return void res.writeHead(fault.status).end();
    let data: Uint8Array;
    try {
      const file = join(dir, path.replace(/^\/+/, ""));
      if (!statSync(file).isFile()) throw new Error("not a file");
      data = fault?.kind === "body" ? fault.bytes : readFileSync(file);
    } catch {
      return void res.writeHead(404).end();
    }
    if (fault?.kind === "corrupt") {
      data = Buffer.from(data);
      data[fault.offset] = data[fault.offset]! ^ 0xff;
    }
    if (fault?.kind === "truncate") data = data.subarray(0, fault.bytes);
    if (fault?.kind === "append") data = Buffer.concat([data, Buffer.alloc(fault.bytes, 7)]);
    let start = 0;
    const range = /^bytes=(\d+)-$/.exec(req.headers.range ?? "");
    if (range && fault?.kind !== "no-range") {
      start = Number(range[1]);
      if (start >= data.length) return void res.writeHead(416, { "content-range": `bytes */${data.length}` }).end();
      res.writeHead(206, {
        "content-length": data.length - start,
        "content-range": `bytes ${start}-${data.length - 1}/${data.length}`,
        "content-type": "application/octet-stream",
      });
    } else {
      const unlabelled = fault?.kind === "append" && fault.unlabelled === true;
      res.writeHead(200, { ...(unlabelled ? {} : { "content-length": data.length }), "content-type": "application/octet-stream" });
    }
    const body = data.subarray(start);
    if (fault?.kind === "stall" || fault?.kind === "cut") {
      const upTo = Math.max(0, fault.afterBytes - start);
      res.write(body.subarray(0, upTo));
      if (fault.kind === "cut") setTimeout(() => res.destroy(), 50);
      return; // stall: never ends; close() destroys it
    }
    if (fault?.kind === "slow") {
      let at = 0;
      const tick = () => {
        if (res.destroyed) return;
        const next = body.subarray(at, at + fault.bytesPerTick);
        at += next.length;
        if (at >= body.length) return void res.end(next);
        res.write(next);
        setTimeout(tick, fault.tickMs);
      };
      return tick();
    }
    res.end(body);
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}/`,
    requests,
    faults,
    count: (path) => requests.get(path)?.length ?? 0,
    close: async () => {
      for (const res of open) res.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
