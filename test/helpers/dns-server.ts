/**
 * A small authoritative DNS server for tests: UDP and TCP on one port, answering A and AAAA
 * queries from a fixed zone, NXDOMAIN for names outside it. An answer that does not fit 512 bytes
 * goes out truncated over UDP (TC set, no records), so clients must retry over TCP. It counts the
 * queries it saw, so a test can prove a name was never asked upstream.
 *
 * Also runnable on its own (a test starts it inside a network namespace):
 *   bun test/helpers/dns-server.ts HOST PORT 'name=addr,addr;name2=addr'
 */
import { createSocket } from "node:dgram";
import { createServer } from "node:net";
import { formatIp, parseIp } from "../../lib/network/addresses.ts";
import { parseQuery } from "../../lib/network/dns/message.ts";

export type Zone = Record<string, string[]>;

export function encodeAnswer(query: Uint8Array, zone: Zone, maxBytes = 65_535): Uint8Array {
  const parsed = parseQuery(query);
  const question = query.subarray(12, parsed.questionEnd);
  const known = Object.hasOwn(zone, parsed.name);
  const records = (zone[parsed.name] ?? [])
    .map((text) => parseIp(text)!)
    .filter((ip) => (parsed.type === 1 && ip.family === 4) || (parsed.type === 28 && ip.family === 6));
  const body = records.map((ip) => Buffer.concat([
    Buffer.from([0xc0, 0x0c, 0, parsed.type, 0, 1, 0, 0, 0, 60, 0, ip.bytes.length]),
    Buffer.from(ip.bytes),
  ]));
  let answers = Buffer.concat(body);
  let flags = 0x8000 | 0x0400 | (parsed.flags & 0x0100) | 0x0080 | (known ? 0 : 3);
  let count = records.length;
  if (12 + question.length + answers.length > maxBytes) {
    flags |= 0x0200;
    answers = Buffer.alloc(0);
    count = 0;
  }
  const header = Buffer.from([query[0]!, query[1]!, flags >> 8, flags & 0xff, 0, 1, 0, count, 0, 0, 0, 0]);
  return Buffer.concat([header, question, answers]);
}

/** A query for `name` (type 1 = A, 28 = AAAA) with recursion desired. */
export function encodeQuery(name: string, type = 1, id = Math.floor(Math.random() * 65_536)): Uint8Array {
  const labels = name.split(".").filter(Boolean).flatMap((label) => [Buffer.from([label.length]), Buffer.from(label)]);
  return Buffer.concat([
    Buffer.from([id >> 8, id & 0xff, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0]),
    ...labels, Buffer.from([0, 0, type, 0, 1]),
  ]);
}

export interface TestDnsServer {
  port: number;
  /** Names asked, in order, lower-cased. */
  asked: string[];
  close(): Promise<void>;
}

export async function startDnsServer(host: string, port: number, zone: Zone): Promise<TestDnsServer> {
  const asked: string[] = [];
  const udp = createSocket(host.includes(":") ? "udp6" : "udp4");
  await new Promise<void>((resolve, reject) => {
    udp.once("error", reject);
    udp.bind(port, host, () => resolve());
  });
  const bound = udp.address().port;
  udp.on("message", (query, client) => {
    try {
      asked.push(parseQuery(query).name);
      udp.send(encodeAnswer(query, zone, 512), client.port, client.address);
    } catch { /* not a query */ }
  });
  const tcp = createServer((socket) => {
    let buffered = Buffer.alloc(0);
    socket.on("error", () => {});
    socket.on("data", (chunk: Buffer) => {
      buffered = Buffer.concat([buffered, chunk]);
      while (buffered.length >= 2 && buffered.length >= 2 + buffered.readUInt16BE(0)) {
        const query = buffered.subarray(2, 2 + buffered.readUInt16BE(0));
        buffered = buffered.subarray(2 + query.length);
        asked.push(parseQuery(query).name);
        const reply = encodeAnswer(query, zone);
        const frame = Buffer.alloc(2 + reply.length);
        frame.writeUInt16BE(reply.length, 0);
        frame.set(reply, 2);
        socket.write(frame);
      }
    });
  });
  await new Promise<void>((resolve, reject) => {
    tcp.once("error", reject);
    tcp.listen(bound, host, () => resolve());
  });
  return {
    port: bound,
    asked,
    close: async () => {
      udp.close();
      await new Promise<void>((resolve) => tcp.close(() => resolve()));
    },
  };
}

/** `name=addr,addr;name2=addr` */
export function parseZone(text: string): Zone {
  return Object.fromEntries(text.split(";").filter(Boolean).map((entry) => {
    const [name, addresses] = entry.split("=") as [string, string];
    return [name.toLowerCase(), addresses.split(",").filter(Boolean).map((a) => formatIp(parseIp(a)!))];
  }));
}

if (import.meta.main) {
  const [host, port, zone] = process.argv.slice(2) as [string, string, string];
  await startDnsServer(host, Number(port), parseZone(zone));
  console.log("dns ready");
}
