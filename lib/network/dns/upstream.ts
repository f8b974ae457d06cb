/**
 * The host's resolvers, and one exchange with them. The responder runs in the host's own network
 * namespace, so a resolver on the host's loopback (systemd-resolved's 127.0.0.53, a local
 * dnsmasq) works here even though no sandbox can reach it.
 */
import { createSocket } from "node:dgram";
import { readFileSync } from "node:fs";
import { connect, isIP } from "node:net";

export interface Upstream {
  address: string;
  port: number;
}

/** The `nameserver` lines of a resolv.conf, in order; 127.0.0.1 when there are none (as libc does). */
export function parseResolvConf(text: string): Upstream[] {
  const servers = text.split("\n").flatMap((line) => {
    const match = /^\s*nameserver\s+(\S+)/.exec(line);
    if (!match) return [];
    const address = match[1]!.split("%")[0]!;
    return isIP(address) ? [{ address, port: 53 }] : [];
  });
  return servers.length > 0 ? servers : [{ address: "127.0.0.1", port: 53 }];
}

export function hostUpstreams(file = "/etc/resolv.conf"): Upstream[] {
  try {
    return parseResolvConf(readFileSync(file, "utf8"));
  } catch {
    return parseResolvConf("");
  }
}

/**
 * Sends one query over UDP from a fresh socket (a fresh random source port per query) and
 * resolves with the first reply from that server carrying the query's id; undefined at the
 * deadline.
 */
export function exchangeUdp(upstream: Upstream, query: Uint8Array, timeoutMs: number): Promise<Uint8Array | undefined> {
  return new Promise((resolve) => {
    const socket = createSocket(isIP(upstream.address) === 6 ? "udp6" : "udp4");
    const done = (reply: Uint8Array | undefined) => {
      clearTimeout(timer);
      socket.close();
      resolve(reply);
    };
    const timer = setTimeout(() => done(undefined), timeoutMs);
    socket.on("error", () => done(undefined));
    socket.on("message", (reply, from) => {
      if (from.address !== upstream.address) return;
      if (reply.length >= 2 && reply[0] === query[0] && reply[1] === query[1]) done(reply);
    });
    socket.send(query, upstream.port, upstream.address, (error) => {
      if (error) done(undefined);
    });
  });
}

/** One query over TCP (for answers too large for UDP); undefined on any failure or the deadline. */
export function exchangeTcp(upstream: Upstream, query: Uint8Array, timeoutMs: number): Promise<Uint8Array | undefined> {
  return new Promise((resolve) => {
    const socket = connect({ host: upstream.address, port: upstream.port });
    let buffered = Buffer.alloc(0);
    const done = (reply: Uint8Array | undefined) => {
      clearTimeout(timer);
      socket.destroy();
      resolve(reply);
    };
    const timer = setTimeout(() => done(undefined), timeoutMs);
    socket.on("error", () => done(undefined));
    socket.on("close", () => done(undefined));
    socket.on("connect", () => {
      const frame = Buffer.alloc(2 + query.length);
      frame.writeUInt16BE(query.length, 0);
      frame.set(query, 2);
      socket.write(frame);
    });
    socket.on("data", (chunk: Buffer) => {
      buffered = Buffer.concat([buffered, chunk]);
      if (buffered.length < 2) return;
      const length = buffered.readUInt16BE(0);
      if (buffered.length >= 2 + length) done(buffered.subarray(2, 2 + length));
    });
  });
}
