/**
 * A static file server on 127.0.0.1 for the bench's published-image phases: the release
 * directory it just built, served the way a mirror would (plain GET, Content-Length).
 */
import { createReadStream, statSync } from "node:fs";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { basename, join } from "node:path";

export interface Mirror {
  url: string;
  close(): Promise<void>;
}

export async function serveDirectory(dir: string): Promise<Mirror> {
  const server: Server = createServer((req, res) => {
    // Only plain names in `dir`: the bench asks for nothing else.
    const name = basename(decodeURIComponent(new URL(req.url ?? "/", "http://mirror").pathname));
    const path = join(dir, name);
    let size: number;
    try {
      const info = statSync(path);
      if (!info.isFile()) throw new Error("not a file");
      size = info.size;
    } catch {
      res.writeHead(404).end();
      return;
    }
    res.writeHead(200, { "content-length": size, "content-type": "application/octet-stream" });
    createReadStream(path, { highWaterMark: 1 << 20 }).pipe(res);
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}/`,
    close: () => new Promise<void>((resolve) => {
      server.closeAllConnections();
      server.close(() => resolve());
    }),
  };
}
