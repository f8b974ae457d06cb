/**
 * IP addresses and CIDR ranges, parsed into bytes so that ranges can be compared and printed in
 * one canonical form (what nft is given and what `info` shows). Pure: no effects.
 *
 * Only plain dotted IPv4 and RFC 4291 IPv6 text are accepted: no zone ids (`%eth0`), no
 * shorthand like `10.1` or `0x7f.1`, which libc would read as addresses a user did not mean.
 */
import { isIPv4, isIPv6 } from "node:net";

export type IpFamily = 4 | 6;

export interface IpAddress {
  family: IpFamily;
  /** 4 or 16 bytes, network order. */
  bytes: Uint8Array;
}

/** A range: its network address (host bits zero) and prefix length. A single address is /32 or /128. */
export interface Cidr {
  family: IpFamily;
  bytes: Uint8Array;
  prefix: number;
}

export function parseIp(text: string): IpAddress | undefined {
  if (isIPv4(text)) return { family: 4, bytes: Uint8Array.from(text.split(".").map(Number)) };
  if (!isIPv6(text) || text.includes("%")) return undefined;
  return { family: 6, bytes: ipv6Bytes(text) };
}

function ipv6Bytes(text: string): Uint8Array {
  let source = text;
  const bytes = new Uint8Array(16);
  // An embedded IPv4 tail (::ffff:192.0.2.1) is two groups written in dotted form.
  const dotted = /(\d+\.\d+\.\d+\.\d+)$/.exec(source);
  if (dotted) {
    const v4 = dotted[1]!.split(".").map(Number);
    source = `${source.slice(0, -dotted[1]!.length)}${((v4[0]! << 8) | v4[1]!).toString(16)}:${((v4[2]! << 8) | v4[3]!).toString(16)}`;
  }
  const [head, tail] = source.includes("::") ? source.split("::") as [string, string] : [source, undefined];
  const groups = (part: string | undefined) => (part ? part.split(":").map((g) => Number.parseInt(g, 16)) : []);
  const front = groups(head);
  const back = groups(tail);
  const all = [...front, ...new Array<number>(8 - front.length - back.length).fill(0), ...back];
  all.forEach((group, i) => {
    bytes[i * 2] = group >> 8;
    bytes[i * 2 + 1] = group & 0xff;
  });
  return bytes;
}

export function formatIp(address: { family: IpFamily; bytes: Uint8Array }): string {
  if (address.family === 4) return [...address.bytes].join(".");
  const groups = Array.from({ length: 8 }, (_, i) => (address.bytes[i * 2]! << 8) | address.bytes[i * 2 + 1]!);
  // RFC 5952: the longest run (of two or more) of zero groups becomes "::".
  let best = { start: -1, length: 0 };
  for (let i = 0; i < 8;) {
    if (groups[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && groups[j] === 0) j++;
    if (j - i > best.length && j - i >= 2) best = { start: i, length: j - i };
    i = j;
  }
  const hex = groups.map((g) => g.toString(16));
  if (best.start < 0) return hex.join(":");
  return `${hex.slice(0, best.start).join(":")}::${hex.slice(best.start + best.length).join(":")}`;
}

/**
 * Parses `10.0.0.0/8`, `2001:db8::/32` or a bare address (a /32 or /128). Host bits are cleared:
 * `10.1.2.3/8` is the range `10.0.0.0/8`. Undefined when the text is neither.
 */
export function parseCidr(text: string): Cidr | undefined {
  const slash = text.indexOf("/");
  const address = parseIp(slash < 0 ? text : text.slice(0, slash));
  if (address === undefined) return undefined;
  const bits = address.family === 4 ? 32 : 128;
  let prefix = bits;
  if (slash >= 0) {
    const digits = text.slice(slash + 1);
    if (!/^\d{1,3}$/.test(digits)) return undefined;
    prefix = Number(digits);
    if (prefix > bits) return undefined;
  }
  return { family: address.family, bytes: maskBytes(address.bytes, prefix), prefix };
}

function maskBytes(bytes: Uint8Array, prefix: number): Uint8Array {
  const masked = new Uint8Array(bytes.length);
  for (let i = 0; i < bytes.length; i++) {
    const keep = Math.max(0, Math.min(8, prefix - i * 8));
    masked[i] = bytes[i]! & ((0xff << (8 - keep)) & 0xff);
  }
  return masked;
}

/** `10.0.0.0/8`; a single address prints without its prefix. */
export function formatCidr(cidr: Cidr): string {
  const full = cidr.family === 4 ? 32 : 128;
  return cidr.prefix === full ? formatIp(cidr) : `${formatIp(cidr)}/${cidr.prefix}`;
}

/** A CIDR from text this module's own constants are written in; throws on a typo. */
export function cidr(text: string): Cidr {
  const parsed = parseCidr(text);
  if (parsed === undefined) throw new RangeError(`not a CIDR range: ${text}`);
  return parsed;
}

export function cidrContains(range: Cidr, address: IpAddress | Cidr): boolean {
  if (range.family !== address.family) return false;
  const prefix = "prefix" in address ? address.prefix : address.family === 4 ? 32 : 128;
  if (prefix < range.prefix) return false;
  const masked = maskBytes(address.bytes, range.prefix);
  return masked.every((byte, i) => byte === range.bytes[i]);
}

export function cidrsOverlap(a: Cidr, b: Cidr): boolean {
  return cidrContains(a, b) || cidrContains(b, a);
}

/** Never reachable from a sandbox, whatever its policy says: the host itself and link-local space. */
export const NEVER_ALLOWED: readonly Cidr[] = [
  "0.0.0.0/8", "127.0.0.0/8", "169.254.0.0/16", "224.0.0.0/4", "240.0.0.0/4",
  "::/128", "::1/128", "fe80::/10", "ff00::/8",
].map(cidr);

/**
 * The private networks a host usually sits in (RFC 1918, carrier-grade NAT, IPv6 unique local):
 * closed unless the policy names them. Documentation and benchmarking ranges are public here.
 */
export const PRIVATE_RANGES: readonly Cidr[] = [
  "10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "100.64.0.0/10", "fc00::/7",
].map(cidr);

/** The cloud metadata address, named in errors because it is the one users ask about. */
export const METADATA_ADDRESS = "169.254.169.254";
