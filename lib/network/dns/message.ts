/**
 * The little of the DNS wire format (RFC 1035) the sandbox's responder needs: read a query's
 * header and question, answer with an error code, and read the A and AAAA records of an upstream
 * answer. Pure. Queries come from the guest, so every read is bounds-checked and a name may
 * follow at most a few compression pointers; anything odd is a `DnsFormatError`.
 */
import type { IpAddress } from "../addresses.ts";

export const RCODE = { NOERROR: 0, FORMERR: 1, SERVFAIL: 2, NXDOMAIN: 3, NOTIMP: 4, REFUSED: 5 } as const;
export const TYPE = { A: 1, AAAA: 28 } as const;

const HEADER_BYTES = 12;
const MAX_POINTERS = 16;

export class DnsFormatError extends Error {}

export interface DnsQuery {
  id: number;
  /** The header's flags word as sent. */
  flags: number;
  opcode: number;
  /** Lower-cased, without the trailing dot; "" for the root. */
  name: string;
  type: number;
  klass: number;
  /** Where the question ends: an error answer echoes the bytes before it. */
  questionEnd: number;
}

function u16(buffer: Uint8Array, at: number): number {
  if (at + 2 > buffer.length) throw new DnsFormatError("truncated message");
  return (buffer[at]! << 8) | buffer[at + 1]!;
}

/** Reads the name at `at`; returns it and where the name's bytes end at that position. */
export function readName(buffer: Uint8Array, at: number): { name: string; end: number } {
  const labels: string[] = [];
  let position = at;
  let end: number | undefined;
  let pointers = 0;
  let length = 0;
  for (;;) {
    if (position >= buffer.length) throw new DnsFormatError("truncated name");
    const size = buffer[position]!;
    if ((size & 0xc0) === 0xc0) {
      if (++pointers > MAX_POINTERS) throw new DnsFormatError("too many compression pointers");
      const target = u16(buffer, position) & 0x3fff;
      end ??= position + 2;
      if (target >= buffer.length) throw new DnsFormatError("compression pointer out of range");
      position = target;
      continue;
    }
    if ((size & 0xc0) !== 0) throw new DnsFormatError("unknown label type");
    if (size === 0) {
      end ??= position + 1;
      break;
    }
    if (position + 1 + size > buffer.length) throw new DnsFormatError("truncated label");
    length += size + 1;
    if (length > 255) throw new DnsFormatError("name longer than 255 bytes");
    labels.push(Buffer.from(buffer.subarray(position + 1, position + 1 + size)).toString("latin1").toLowerCase());
    position += 1 + size;
  }
  return { name: labels.join("."), end };
}

/** Reads a query: one question, QR clear. Throws DnsFormatError (with the id, when it could be read). */
export function parseQuery(buffer: Uint8Array): DnsQuery {
  if (buffer.length < HEADER_BYTES) throw new DnsFormatError("shorter than a DNS header");
  const id = u16(buffer, 0);
  const flags = u16(buffer, 2);
  if (flags & 0x8000) throw new DnsFormatError("not a query");
  if (u16(buffer, 4) !== 1) throw new DnsFormatError("not exactly one question");
  const { name, end } = readName(buffer, HEADER_BYTES);
  const type = u16(buffer, end);
  const klass = u16(buffer, end + 2);
  return { id, flags, opcode: (flags >> 11) & 0xf, name, type, klass, questionEnd: end + 4 };
}

/** The id of a message too broken to parse, if it has one (to answer FORMERR to). */
export function messageId(buffer: Uint8Array): number | undefined {
  return buffer.length >= 2 ? u16(buffer, 0) : undefined;
}

/**
 * An answer carrying only `rcode`: same id, QR and RA set, the client's RD and opcode kept, and
 * its question echoed (when there is one) so resolvers match it to their query.
 */
export function errorResponse(query: Uint8Array, rcode: number, parsed?: DnsQuery): Uint8Array {
  const question = parsed === undefined ? new Uint8Array(0) : query.subarray(HEADER_BYTES, parsed.questionEnd);
  const out = new Uint8Array(HEADER_BYTES + question.length);
  const id = messageId(query) ?? 0;
  const clientFlags = parsed?.flags ?? 0;
  const flags = 0x8000 | (clientFlags & 0x7800) | (clientFlags & 0x0100) | 0x0080 | (rcode & 0xf);
  out.set([id >> 8, id & 0xff, flags >> 8, flags & 0xff, 0, question.length > 0 ? 1 : 0, 0, 0, 0, 0, 0, 0]);
  out.set(question, HEADER_BYTES);
  return out;
}

export interface DnsAnswerSummary {
  id: number;
  rcode: number;
  truncated: boolean;
  /** Every A and AAAA record in the answer section, whatever name it is for (CNAME targets too). */
  addresses: IpAddress[];
}

/** Reads an upstream answer's header and the addresses in its answer section. */
export function summarizeAnswer(buffer: Uint8Array): DnsAnswerSummary {
  if (buffer.length < HEADER_BYTES) throw new DnsFormatError("shorter than a DNS header");
  const flags = u16(buffer, 2);
  if (!(flags & 0x8000)) throw new DnsFormatError("not a response");
  const questions = u16(buffer, 4);
  const answers = u16(buffer, 6);
  let at = HEADER_BYTES;
  for (let i = 0; i < questions; i++) at = readName(buffer, at).end + 4;
  const addresses: IpAddress[] = [];
  for (let i = 0; i < answers; i++) {
    at = readName(buffer, at).end;
    const type = u16(buffer, at);
    const klass = u16(buffer, at + 2);
    const length = u16(buffer, at + 8);
    const data = at + 10;
    if (data + length > buffer.length) throw new DnsFormatError("truncated record");
    if (klass === 1 && type === TYPE.A && length === 4) addresses.push({ family: 4, bytes: buffer.slice(data, data + 4) });
    if (klass === 1 && type === TYPE.AAAA && length === 16) addresses.push({ family: 6, bytes: buffer.slice(data, data + 16) });
    at = data + length;
  }
  return { id: u16(buffer, 0), rcode: flags & 0xf, truncated: (flags & 0x0200) !== 0, addresses };
}
