/**
 * A sandbox's DNS responder, owned by its supervisor: the only resolver the guest is given.
 *
 * Each query is judged against the sandbox's egress policy. A refused name gets NXDOMAIN at once
 * (every resolver, musl's included, gives up on that; musl ignores REFUSED and would wait for
 * its timeout). An allowed one is relayed as is to the host's own resolvers, and when the policy
 * named it, the addresses in the answer are let through the sandbox's firewall before the answer
 * goes back, so the guest's connect right after cannot race the rule. A refused name is never
 * sent upstream, so names cannot carry data out of a sandbox that may not reach them.
 *
 * It serves UDP and TCP on one port (the guest retries over TCP when an answer is truncated).
 */
import { createSocket, type Socket as UdpSocket } from "node:dgram";
import { createServer, type Server, type Socket } from "node:net";
import { cidrContains, formatIp, NEVER_ALLOWED, type IpAddress } from "../addresses.ts";
import { judgeName, type EgressPolicy } from "../policy.ts";
import { DnsFormatError, errorResponse, messageId, parseQuery, RCODE, summarizeAnswer } from "./message.ts";
import { exchangeTcp, exchangeUdp, type Upstream } from "./upstream.ts";

export interface ResponderOptions {
  /** The address to listen on: 127.0.0.1 for user mode (reached through the sandbox's relay), the TAP gateway otherwise. */
  host: string;
  /** 0 picks a free port. */
  port: number;
  upstreams: () => readonly Upstream[];
  policy: () => EgressPolicy;
  /** Opens the firewall for addresses an allowed name resolved to. A rejection turns the answer into SERVFAIL. */
  learn: (addresses: IpAddress[]) => Promise<void>;
  /** Per upstream server. */
  timeoutMs?: number;
  log?: (message: string) => void;
}

export interface Responder {
  port: number;
  /** Forgets which addresses were opened already (after the firewall's learned sets were emptied). */
  forgetLearned(): void;
  close(): Promise<void>;
}

const MAX_TCP_CLIENTS = 32;
/** Queries being answered at once over UDP; a guest flooding more is dropped, as a busy server would. */
const MAX_UDP_IN_FLIGHT = 128;
const TCP_IDLE_MS = 10_000;

export async function startResponder(options: ResponderOptions): Promise<Responder> {
  const timeoutMs = options.timeoutMs ?? 2_000;
  const learned = new Set<string>();

  async function answer(query: Uint8Array, transport: "udp" | "tcp"): Promise<Uint8Array | undefined> {
    let parsed;
    try {
      parsed = parseQuery(query);
    } catch (error) {
      if (!(error instanceof DnsFormatError) || messageId(query) === undefined) return undefined;
      return errorResponse(query, RCODE.FORMERR);
    }
    if (parsed.opcode !== 0) return errorResponse(query, RCODE.NOTIMP, parsed);
    const verdict = judgeName(options.policy(), parsed.name);
    if (verdict === "refuse") return errorResponse(query, RCODE.NXDOMAIN, parsed);
    const reply = await relay(query, transport);
    if (reply === undefined) return errorResponse(query, RCODE.SERVFAIL, parsed);
    if (verdict === "learn") {
      try {
        await open(summarizeAnswer(reply).addresses);
      } catch (error) {
        options.log?.(`dns: cannot open the firewall for "${parsed.name}": ${(error as Error).message}`);
        return errorResponse(query, RCODE.SERVFAIL, parsed);
      }
    }
    return reply;
  }

  async function relay(query: Uint8Array, transport: "udp" | "tcp"): Promise<Uint8Array | undefined> {
    for (const upstream of options.upstreams()) {
      const reply = transport === "udp"
        ? await exchangeUdp(upstream, query, timeoutMs)
        : await exchangeTcp(upstream, query, timeoutMs);
      if (reply !== undefined) return reply;
    }
    options.log?.("dns: no upstream resolver answered");
    return undefined;
  }

  async function open(addresses: IpAddress[]): Promise<void> {
    const fresh = addresses.filter((address) =>
      !NEVER_ALLOWED.some((range) => cidrContains(range, address)) && !learned.has(formatIp(address)));
    if (fresh.length === 0) return;
    await options.learn(fresh);
    for (const address of fresh) learned.add(formatIp(address));
  }

  const udp = await bindUdp(options.host, options.port);
  const port = udp.address().port;
  let inFlight = 0;
  udp.on("message", (query, client) => {
    if (inFlight >= MAX_UDP_IN_FLIGHT) return;
    inFlight++;
    void answer(query, "udp").then((reply) => {
      inFlight--;
      if (reply !== undefined) udp.send(reply, client.port, client.address);
    });
  });
  udp.on("error", (error) => options.log?.(`dns: ${error.message}`));

  let tcp: Server;
  try {
    tcp = await listenTcp(options.host, port, (socket) => serveTcp(socket, (query) => answer(query, "tcp")));
  } catch (error) {
    udp.close();
    throw error;
  }
  return {
    port,
    forgetLearned: () => learned.clear(),
    close: async () => {
      udp.close();
      await new Promise<void>((resolve) => tcp.close(() => resolve()));
    },
  };
}

function bindUdp(host: string, port: number): Promise<UdpSocket> {
  return new Promise((resolve, reject) => {
    const socket = createSocket({ type: host.includes(":") ? "udp6" : "udp4", reuseAddr: false });
    socket.once("error", reject);
    socket.bind({ address: host, port, exclusive: true }, () => {
      socket.off("error", reject);
      resolve(socket);
    });
  });
}

function listenTcp(host: string, port: number, onClient: (socket: Socket) => void): Promise<Server> {
  return new Promise((resolve, reject) => {
    const server = createServer(onClient);
    server.maxConnections = MAX_TCP_CLIENTS;
    server.once("error", reject);
    server.listen({ host, port, exclusive: true }, () => {
      server.off("error", reject);
      resolve(server);
    });
  });
}

/** Length-prefixed queries, answered in order, one at a time; an idle or oversized client is dropped. */
function serveTcp(socket: Socket, answer: (query: Uint8Array) => Promise<Uint8Array | undefined>): void {
  let buffered = Buffer.alloc(0);
  let busy = false;
  socket.setTimeout(TCP_IDLE_MS, () => socket.destroy());
  socket.on("error", () => socket.destroy());
  const drain = async () => {
    if (busy) return;
    busy = true;
    while (buffered.length >= 2 && buffered.length >= 2 + buffered.readUInt16BE(0)) {
      const length = buffered.readUInt16BE(0);
      const query = buffered.subarray(2, 2 + length);
      buffered = buffered.subarray(2 + length);
      const reply = await answer(query);
      if (reply === undefined || socket.destroyed) break;
      const frame = Buffer.alloc(2 + reply.length);
      frame.writeUInt16BE(reply.length, 0);
      frame.set(reply, 2);
      socket.write(frame);
    }
    busy = false;
  };
  socket.on("data", (chunk: Buffer) => {
    buffered = Buffer.concat([buffered, chunk]);
    // A query is at most 64 KiB; more waiting than two of them is a client not reading its answers.
    if (buffered.length > 2 * 65_537) return socket.destroy();
    void drain();
  });
}
