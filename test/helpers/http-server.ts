/**
 * A plain HTTP server for network tests, run inside a namespace a test made:
 *   bun test/helpers/http-server.ts NAME HOST:PORT [HOST:PORT...]
 * `GET /` answers `NAME\n`; `GET /bytes/N` answers N bytes (for download measurements). Prints
 * "http ready" once every address listens.
 */
import { createServer } from "node:http";

const CHUNK = Buffer.alloc(1 << 20, 0x61);

export async function serveHttp(name: string, endpoints: readonly string[]): Promise<() => Promise<void>> {
  const servers = endpoints.map((endpoint) => {
    const server = createServer((request, response) => {
      const size = /^\/bytes\/(\d+)$/.exec(request.url ?? "");
      if (size === null) {
        response.end(`${name}\n`);
        return;
      }
      let left = Number(size[1]);
      response.writeHead(200, { "content-length": String(left), "content-type": "application/octet-stream" });
      const pump = () => {
        while (left > 0) {
          const piece = CHUNK.subarray(0, Math.min(CHUNK.length, left));
          left -= piece.length;
          if (!response.write(piece)) return void response.once("drain", pump);
        }
        response.end();
      };
      pump();
    });
    const colon = endpoint.lastIndexOf(":");
    return new Promise<typeof server>((resolve, reject) => {
      server.once("error", reject);
      server.listen(Number(endpoint.slice(colon + 1)), endpoint.slice(0, colon), () => resolve(server));
    });
  });
  const listening = await Promise.all(servers);
  return async () => {
    await Promise.all(listening.map((server) => new Promise<void>((resolve) => server.close(() => resolve()))));
  };
}

if (import.meta.main) {
  const [name, ...endpoints] = process.argv.slice(2) as [string, ...string[]];
  await serveHttp(name, endpoints);
  console.log("http ready");
}
