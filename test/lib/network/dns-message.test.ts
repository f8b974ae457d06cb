import { describe, expect, test } from "bun:test";
import { formatIp } from "../../../lib/network/addresses.ts";
import {
  DnsFormatError, errorResponse, parseQuery, RCODE, readName, summarizeAnswer,
} from "../../../lib/network/dns/message.ts";
import { encodeAnswer, encodeQuery } from "../../helpers/dns-server.ts";

describe("DNS messages", () => {
  test("a query's id, name (lower-cased) and type are read", () => {
    const query = parseQuery(encodeQuery("WWW.Example.ORG", 28, 0x1234));
    expect(query).toMatchObject({ id: 0x1234, name: "www.example.org", type: 28, klass: 1, opcode: 0 });
  });

  test("an error answer keeps the id and question and sets the code", () => {
    const raw = encodeQuery("blocked.example", 1, 0xbeef);
    const reply = errorResponse(raw, RCODE.NXDOMAIN, parseQuery(raw));
    expect(reply[0]).toBe(0xbe);
    expect(reply[3]! & 0xf).toBe(RCODE.NXDOMAIN);
    expect(reply[2]! & 0x80).toBe(0x80); // QR
    expect(reply[2]! & 0x01).toBe(0x01); // RD echoed
    expect(readName(reply, 12).name).toBe("blocked.example");
  });

  test("every A and AAAA of an answer is found", () => {
    const zone = { "a.example": ["198.18.1.10", "198.18.1.11", "2001:db8::10"] };
    const v4 = summarizeAnswer(encodeAnswer(encodeQuery("a.example", 1), zone));
    expect(v4.addresses.map(formatIp)).toEqual(["198.18.1.10", "198.18.1.11"]);
    const v6 = summarizeAnswer(encodeAnswer(encodeQuery("a.example", 28), zone));
    expect(v6.addresses.map(formatIp)).toEqual(["2001:db8::10"]);
    expect(summarizeAnswer(encodeAnswer(encodeQuery("b.example", 1), zone)).rcode).toBe(RCODE.NXDOMAIN);
  });

  test("hostile bytes only ever raise DnsFormatError: loops, truncation, garbage", () => {
    const loop = Buffer.from([0, 1, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0xc0, 12, 0, 1, 0, 1]);
    expect(() => parseQuery(loop)).toThrow(DnsFormatError);
    expect(() => parseQuery(Buffer.from([1, 2, 3]))).toThrow(DnsFormatError);
    expect(() => parseQuery(Buffer.from([0, 1, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0, 63, 97]))).toThrow(DnsFormatError);
    let seed = 7;
    const random = () => (seed = (seed * 1103515245 + 12345) & 0x7fffffff) & 0xff;
    for (let i = 0; i < 5_000; i++) {
      const bytes = Buffer.from(Array.from({ length: 12 + (random() % 60) }, random));
      for (const read of [parseQuery, summarizeAnswer]) {
        try {
          read(bytes);
        } catch (error) {
          expect(error).toBeInstanceOf(DnsFormatError);
        }
      }
    }
  });
});
