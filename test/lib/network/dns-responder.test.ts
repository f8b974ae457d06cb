/**
 * The responder against a real DNS server on 127.0.0.1 (the "host's resolver"), queried by hand
 * and by node's own resolver client.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { createSocket } from "node:dgram";
import { Resolver } from "node:dns/promises";
import { formatIp, type IpAddress } from "../../../lib/network/addresses.ts";
import { RCODE, summarizeAnswer } from "../../../lib/network/dns/message.ts";
import { startResponder, type Responder } from "../../../lib/network/dns/responder.ts";
import { exchangeTcp } from "../../../lib/network/dns/upstream.ts";
import { parsePolicy, type EgressPolicy } from "../../../lib/network/policy.ts";
import { encodeQuery, startDnsServer, type TestDnsServer } from "../../helpers/dns-server.ts";

const many = Array.from({ length: 40 }, (_, i) => `198.18.2.${i + 1}`);
let upstream: TestDnsServer;
let responder: Responder;
let policy: EgressPolicy = parsePolicy({});
let learned: string[][] = [];
let learnFails = false;

beforeAll(async () => {
  upstream = await startDnsServer("127.0.0.1", 0, {
    "internet.test": ["198.18.1.10"],
    "other.test": ["198.18.1.11"],
    "big.test": many,
    "lan.test": ["10.1.2.3", "127.0.0.1"],
  });
  responder = await startResponder({
    host: "127.0.0.1",
    port: 0,
    upstreams: () => [{ address: "127.0.0.1", port: upstream.port }],
    policy: () => policy,
    learn: async (addresses: IpAddress[]) => {
      if (learnFails) throw new Error("nft said no");
      learned.push(addresses.map(formatIp));
    },
    timeoutMs: 500,
  });
});
afterAll(async () => {
  await responder.close();
  await upstream.close();
});

function ask(name: string, type = 1): Promise<Uint8Array> {
  return new Promise((resolve, reject) => {
    const socket = createSocket("udp4");
    const timer = setTimeout(() => {
      socket.close();
      reject(new Error("no answer"));
    }, 3_000);
    socket.on("message", (reply) => {
      clearTimeout(timer);
      socket.close();
      resolve(reply);
    });
    socket.send(encodeQuery(name, type), responder.port, "127.0.0.1");
  });
}

function resolver(): Resolver {
  const r = new Resolver({ timeout: 1_000, tries: 1 });
  r.setServers([`127.0.0.1:${responder.port}`]);
  return r;
}

describe("the sandbox DNS responder", () => {
  test("with the internet allowed, relays any name and opens nothing", async () => {
    policy = parsePolicy({});
    learned = [];
    expect(await resolver().resolve4("internet.test")).toEqual(["198.18.1.10"]);
    expect(learned).toEqual([]);
  });

  test("answers NXDOMAIN at once for a name the policy refuses, without asking upstream", async () => {
    policy = parsePolicy({ allowHosts: ["internet.test"] });
    const before = upstream.asked.length;
    const started = performance.now();
    const error = await resolver().resolve4("other.test").catch((e: NodeJS.ErrnoException) => e);
    expect((error as NodeJS.ErrnoException).code).toBe("ENOTFOUND");
    expect(performance.now() - started).toBeLessThan(500);
    expect(summarizeAnswer(await ask("other.test")).rcode).toBe(RCODE.NXDOMAIN);
    expect(upstream.asked.length).toBe(before);
  });

  test("opens the firewall for an allowed name's addresses before answering, once per address, never for loopback", async () => {
    policy = parsePolicy({ allowHosts: ["internet.test", "lan.test"] });
    learned = [];
    responder.forgetLearned();
    expect(await resolver().resolve4("internet.test")).toEqual(["198.18.1.10"]);
    expect(await resolver().resolve4("internet.test")).toEqual(["198.18.1.10"]);
    expect(learned).toEqual([["198.18.1.10"]]);
    await resolver().resolve4("lan.test");
    expect(learned[1]).toEqual(["10.1.2.3"]);
  });

  test("answers SERVFAIL when the firewall cannot be opened", async () => {
    policy = parsePolicy({ allowHosts: ["other.test"] });
    learnFails = true;
    try {
      expect(summarizeAnswer(await ask("other.test")).rcode).toBe(RCODE.SERVFAIL);
    } finally {
      learnFails = false;
    }
  });

  test("relays a truncated UDP answer as is, and answers the retry over TCP in full", async () => {
    policy = parsePolicy({});
    const udp = summarizeAnswer(await ask("big.test"));
    expect(udp.truncated).toBe(true);
    const tcp = await exchangeTcp({ address: "127.0.0.1", port: responder.port }, encodeQuery("big.test"), 2_000);
    expect(summarizeAnswer(tcp!).addresses.map(formatIp)).toEqual(many);
    expect(await resolver().resolve4("big.test")).toEqual(many);
  });

  test("answers FORMERR to a malformed query and ignores bytes without an id", async () => {
    const reply = await new Promise<Buffer>((resolve) => {
      const socket = createSocket("udp4");
      socket.on("message", (message) => {
        socket.close();
        resolve(message);
      });
      socket.send(Buffer.from([0xab, 0xcd, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0, 60]), responder.port, "127.0.0.1");
    });
    expect(reply[0]).toBe(0xab);
    expect(reply[3]! & 0xf).toBe(RCODE.FORMERR);
  });

  test("answers SERVFAIL when no upstream answers", async () => {
    const lonely = await startResponder({
      host: "127.0.0.1", port: 0, upstreams: () => [{ address: "127.0.0.1", port: 9 }], policy: () => parsePolicy({}),
      learn: async () => {}, timeoutMs: 200,
    });
    try {
      const r = new Resolver({ timeout: 2_000, tries: 1 });
      r.setServers([`127.0.0.1:${lonely.port}`]);
      const error = await r.resolve4("internet.test").catch((e: NodeJS.ErrnoException) => e);
      expect((error as NodeJS.ErrnoException).code).toBe("ESERVFAIL");
    } finally {
      await lonely.close();
    }
  });
});
