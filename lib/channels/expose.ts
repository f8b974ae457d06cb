/**
 * A loopback listener in this process that relays every accepted connection to a stream the
 * channel opens to a guest port. Both channels use it for `exposeLocal`; the agent's
 * supervisor-held forwards (which outlive the process) live in lib/supervisor/forwards.ts.
 */
import { createServer, type Server, type Socket } from "node:net";
import type { Duplex } from "node:stream";
import { smolError } from "../errors.ts";
import type { LocalExposure } from "./types.ts";

export async function listenAndRelay(
  guestPort: number,
  hostPort: number,
  open: () => Promise<Duplex>,
): Promise<LocalExposure> {
  const sockets = new Set<Socket>();
  const server: Server = createServer((socket) => {
    sockets.add(socket);
    socket.on("close", () => sockets.delete(socket));
    socket.on("error", () => socket.destroy());
    socket.pause();
    open().then(
      (stream) => {
        stream.on("error", () => socket.destroy());
        socket.on("close", () => stream.destroy());
        stream.on("close", () => socket.destroy());
        socket.pipe(stream);
        stream.pipe(socket);
        socket.resume();
      },
      () => socket.destroy(),
    );
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", (error: NodeJS.ErrnoException) =>
      reject(smolError(error.code === "EADDRINUSE" ? "ALREADY_EXISTS" : "IO_ERROR", `Cannot listen on 127.0.0.1:${hostPort}: ${error.message}`, {
        hint: "pick another host port, or leave it out to get a free one",
        cause: error,
      })),
    );
    server.listen({ host: "127.0.0.1", port: hostPort }, () => resolve());
  });
  const address = server.address();
  const port = typeof address === "object" && address !== null ? address.port : hostPort;
  let closing: Promise<void> | undefined;
  return {
    host: "127.0.0.1",
    hostPort: port,
    guestPort,
    close: () => {
      closing ??= new Promise<void>((resolve) => {
        for (const socket of sockets) socket.destroy();
        server.close(() => resolve());
      });
      return closing;
    },
  };
}
