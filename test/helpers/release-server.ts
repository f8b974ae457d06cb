/**
 * A real HTTP server on 127.0.0.1 that serves a directory laid out like a GitHub release
 * download area (`latest/download/FILE`, `download/vX.Y.Z/FILE`), with faults on demand: a body
 * cut short (the connection drops after half the bytes) or a body that stalls halfway.
 */
import { createReadStream, existsSync, statSync } from "node:fs";
import { createServer, type ServerResponse } from "node:http";
import type { AddressInfo, Socket } from "node:net";
import { join } from "node:path";

export type Fault = "truncate" | "stall";

export interface ReleaseServer {
  url: string;
  /** Every request path, in order. */
  requests: string[];
  /** Fault to inject for a request path (checked on every request; change it between runs). */
  faults: Map<string, Fault>;
  /** Resolves once a stalled response has sent its first half. */
  stalled(): Promise<string>;
  close(): Promise<void>;
}

export async function serveRelease(root: string): Promise<ReleaseServer> {
  const requests: string[] = [];
  const faults = new Map<string, Fault>();
  const sockets = new Set<Socket>();
  let onStall: ((path: string) => void) | undefined;
  const stalls: string[] = [];

  const server = createServer((request, response) => {
    const path = decodeURIComponent(new URL(request.url ?? "/", "http://x").pathname);
    requests.push(path);
    // URL parsing has already resolved any `..`, so the path stays under the root; symlinks
    // in the release (latest -> a version, a binary linked from dist/) are followed.
    const real = join(root, path);
    if (!existsSync(real) || !statSync(real).isFile()) return notFound(response);
    const size = statSync(real).size;
    // One request per connection: Bun's fetch reusing a kept-alive connection of this server
    // once read the next answer as a malformed response (a whole run under load).
    response.writeHead(200, { "content-type": "application/octet-stream", "content-length": String(size), connection: "close" });
    const fault = faults.get(path);
    if (fault === undefined) {
      createReadStream(real).pipe(response);
      return;
    }
    const half = Math.floor(size / 2);
    const stream = createReadStream(real, { start: 0, end: Math.max(0, half - 1) });
    stream.pipe(response, { end: false });
    stream.on("end", () => {
      if (fault === "truncate") {
        request.socket.destroy();
        return;
      }
      stalls.push(path);
      onStall?.(path);
    });
  });
  server.on("connection", (socket) => {
    sockets.add(socket);
    socket.on("close", () => sockets.delete(socket));
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    requests,
    faults,
    stalled: () =>
      stalls.length > 0
        ? Promise.resolve(stalls[0]!)
        : new Promise((resolve) => {
            onStall = resolve;
          }),
    close: () =>
      new Promise((resolve) => {
        for (const socket of sockets) socket.destroy();
        server.close(() => resolve());
      }),
  };
}

function notFound(response: ServerResponse): void {
  response.writeHead(404, { "content-type": "text/plain", connection: "close" });
  response.end("not found\n");
}
