import { describe, expect, test } from "bun:test";
import {
  cidrContains, cidrsOverlap, formatCidr, formatIp, NEVER_ALLOWED, parseCidr, parseIp, PRIVATE_RANGES,
} from "../../../lib/network/addresses.ts";

describe("parseIp and formatIp", () => {
  test("read dotted IPv4 and print it back", () => {
    expect(formatIp(parseIp("198.18.1.10")!)).toBe("198.18.1.10");
  });

  test("read every IPv6 spelling and print the RFC 5952 form", () => {
    expect(formatIp(parseIp("2001:0db8:0000:0000:0000:0000:0000:0001")!)).toBe("2001:db8::1");
    expect(formatIp(parseIp("::1")!)).toBe("::1");
    expect(formatIp(parseIp("::")!)).toBe("::");
    expect(formatIp(parseIp("fe80::")!)).toBe("fe80::");
    expect(formatIp(parseIp("1:0:0:2:0:0:0:3")!)).toBe("1:0:0:2::3");
    expect(formatIp(parseIp("1:0:2:3:4:5:6:7")!)).toBe("1:0:2:3:4:5:6:7");
  });

  test("read an IPv4 tail inside IPv6", () => {
    expect(formatIp(parseIp("::ffff:127.0.0.1")!)).toBe("::ffff:7f00:1");
  });

  test("refuse shorthand, zone ids and garbage", () => {
    for (const text of ["10.1", "0x7f.0.0.1", "256.1.1.1", "fe80::1%eth0", "", "1.2.3.4.5", "example.com", ":::1"]) {
      expect(parseIp(text)).toBeUndefined();
    }
  });
});

describe("parseCidr", () => {
  test("clears host bits and keeps the prefix", () => {
    expect(formatCidr(parseCidr("10.1.2.3/8")!)).toBe("10.0.0.0/8");
    expect(formatCidr(parseCidr("2001:db8::7/32")!)).toBe("2001:db8::/32");
  });

  test("a bare address is a single-address range, printed without its prefix", () => {
    expect(parseCidr("203.0.113.7")!.prefix).toBe(32);
    expect(formatCidr(parseCidr("203.0.113.7/32")!)).toBe("203.0.113.7");
    expect(parseCidr("::1")!.prefix).toBe(128);
  });

  test("refuses prefixes that do not fit and malformed ones", () => {
    for (const text of ["10.0.0.0/33", "::/129", "10.0.0.0/", "10.0.0.0/8/8", "10.0.0.0/-1", "10.0.0.0/08x"]) {
      expect(parseCidr(text)).toBeUndefined();
    }
  });
});

describe("containment", () => {
  test("a range contains its addresses and narrower ranges, not wider ones or other families", () => {
    const ten = parseCidr("10.0.0.0/8")!;
    expect(cidrContains(ten, parseIp("10.255.0.1")!)).toBe(true);
    expect(cidrContains(ten, parseCidr("10.1.0.0/16")!)).toBe(true);
    expect(cidrContains(parseCidr("10.1.0.0/16")!, ten)).toBe(false);
    expect(cidrContains(ten, parseIp("11.0.0.1")!)).toBe(false);
    expect(cidrContains(ten, parseIp("::a00:1")!)).toBe(false);
    expect(cidrsOverlap(parseCidr("10.1.0.0/16")!, ten)).toBe(true);
  });

  test("the closed and private ranges cover what the host and its networks use", () => {
    const closed = (text: string) => NEVER_ALLOWED.some((range) => cidrContains(range, parseIp(text)!));
    const privateRange = (text: string) => PRIVATE_RANGES.some((range) => cidrContains(range, parseIp(text)!));
    for (const text of ["127.0.0.1", "127.1.2.3", "169.254.169.254", "0.0.0.0", "224.0.0.251", "::1", "fe80::1", "::"]) {
      expect(closed(text)).toBe(true);
    }
    for (const text of ["10.0.2.2", "172.16.0.1", "192.168.1.1", "100.64.0.1", "fd00::2"]) expect(privateRange(text)).toBe(true);
    // Documentation and benchmarking ranges are public addresses here (tests build their "internet" on them).
    for (const text of ["198.18.1.10", "192.0.2.2", "203.0.113.7", "8.8.8.8"]) {
      expect(closed(text) || privateRange(text)).toBe(false);
    }
  });
});
