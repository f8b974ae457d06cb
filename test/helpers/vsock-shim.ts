/**
 * The host side of Firecracker's hybrid vsock, played by a test: a Unix socket that takes
 * `CONNECT <port>\n`, connects to whatever the test maps that guest port to (the native test agent's
 * Unix socket), acknowledges with `OK <host-side port>\n` and then relays bytes both ways. A port
 * nobody listens on gets the connection closed without a word, as Firecracker does.
 */
import { connect, createServer, type Server, type Socket } from "node:net";
import { rmSync } from "node:fs";

export interface VsockShim {
  udsPath: string;
  /** The CONNECT lines received, in order. */
  readonly connects: string[];
  close(): Promise<void>;
}

export interface VsockShimOptions {
  udsPath: string;
  /** Guest port -> Unix socket of the service behind it. */
  ports: Record<number, string>;
  /** Replace the acknowledgement (to test a client's handling of a bad one). */
  reply?: (port: number) => string;
}

/** Firecracker numbers host-side ends of host-initiated connections from 2^30 up. */
const FIRST_HOST_PORT = 1 << 30;

export async function startVsockShim(options: VsockShimOptions): Promise<VsockShim> {
  rmSync(options.udsPath, { force: true });
  const connects: string[] = [];
  const open = new Set<Socket>();
  let nextHostPort = FIRST_HOST_PORT;
  const server: Server = createServer((host) => {
    open.add(host);
    host.on("close", () => open.delete(host));
    host.on("error", () => {});
    let buffered = Buffer.alloc(0);
    const onData = (chunk: Buffer) => {
      buffered = Buffer.concat([buffered, chunk]);
      const newline = buffered.indexOf(0x0a);
      if (newline < 0) {
        if (buffered.length > 64) host.destroy();
        return;
      }
      host.off("data", onData);
      host.pause();
      const line = buffered.subarray(0, newline).toString("latin1");
      const rest = buffered.subarray(newline + 1);
      connects.push(line);
      const port = /^CONNECT (\d+)$/.exec(line)?.[1];
      const target = port === undefined ? undefined : options.ports[Number(port)];
      if (target === undefined) {
        host.destroy();
        return;
      }
      const guest = connect(target);
      open.add(guest);
      guest.on("close", () => {
        open.delete(guest);
        host.destroy();
      });
      guest.on("error", () => host.destroy());
      guest.once("connect", () => {
        host.write(options.reply ? options.reply(Number(port)) : `OK ${nextHostPort++}\n`);
        if (rest.length > 0) guest.write(rest);
        host.pipe(guest);
        guest.pipe(host);
        host.resume();
      });
      host.on("close", () => guest.destroy());
    };
    host.on("data", onData);
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(options.udsPath, () => resolve());
  });
  return {
    udsPath: options.udsPath,
    connects,
    close: async () => {
      for (const socket of open) socket.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      rmSync(options.udsPath, { force: true });
    },
  };
}
