/**
 * Tar headers (POSIX ustar, with pax extended records for what does not fit and GNU long-name
 * entries on read), encoded and decoded as pure functions. Enough of the format for trees of
 * files, directories and links moving between a host and a sandbox; nothing else is produced,
 * and what else arrives is reported by its type so the reader can refuse it.
 */

export const BLOCK = 512;

export type EntryType = "file" | "directory" | "symlink" | "hardlink" | "pax" | "pax-global" | "gnu-longname" | "gnu-longlink" | "other";

export interface RawHeader {
  name: string;
  mode: number;
  uid: number;
  gid: number;
  size: number;
  mtime: number;
  type: EntryType;
  /** The header's type flag as sent, for error messages. */
  flag: string;
  linkname: string;
}

const TYPES: Record<string, EntryType> = {
  "0": "file",
  "\0": "file",
  "7": "file",
  "5": "directory",
  "2": "symlink",
  "1": "hardlink",
  x: "pax",
  g: "pax-global",
  L: "gnu-longname",
  K: "gnu-longlink",
};

function readString(block: Uint8Array, offset: number, length: number): string {
  const field = block.subarray(offset, offset + length);
  const end = field.indexOf(0);
  return Buffer.from(end < 0 ? field : field.subarray(0, end)).toString("utf8");
}

/** An octal field, or GNU base-256 for large values (high bit set on the first byte). */
function readNumber(block: Uint8Array, offset: number, length: number): number {
  const field = block.subarray(offset, offset + length);
  if (field[0]! & 0x80) {
    let value = 0;
    for (let i = 1; i < field.length; i++) value = value * 256 + field[i]!;
    if (field[0]! & 0x40) throw new TarFormatError("a negative number in a header");
    return value + (field[0]! & 0x3f) * 256 ** (field.length - 1);
  }
  const text = Buffer.from(field).toString("latin1").replace(/\0.*$/s, "").trim();
  if (text === "") return 0;
  if (!/^[0-7]+$/.test(text)) throw new TarFormatError(`a malformed number field ${JSON.stringify(text)}`);
  return Number.parseInt(text, 8);
}

export class TarFormatError extends Error {}

/** True for the all-zero block that marks the end of an archive. */
export function isZeroBlock(block: Uint8Array): boolean {
  for (let i = 0; i < BLOCK; i++) if (block[i] !== 0) return false;
  return true;
}

/** Decodes one header block; throws TarFormatError on a bad checksum or field. */
export function decodeHeader(block: Uint8Array): RawHeader {
  if (block.length !== BLOCK) throw new TarFormatError("a short header block");
  let sum = 0;
  for (let i = 0; i < BLOCK; i++) sum += i >= 148 && i < 156 ? 0x20 : block[i]!;
  let stored: number | undefined;
  try {
    stored = readNumber(block, 148, 8);
  } catch {
    stored = undefined;
  }
  if (stored !== sum) throw new TarFormatError("a header with a bad checksum (not a tar stream?)");
  const flag = String.fromCharCode(block[156]!);
  let name = readString(block, 0, 100);
  const magic = Buffer.from(block.subarray(257, 263)).toString("latin1");
  if (magic === "ustar\0" || magic === "ustar ") {
    const prefix = magic === "ustar\0" ? readString(block, 345, 155) : "";
    if (prefix !== "") name = `${prefix}/${name}`;
  }
  return {
    name,
    mode: readNumber(block, 100, 8),
    uid: readNumber(block, 108, 8),
    gid: readNumber(block, 116, 8),
    size: readNumber(block, 124, 12),
    mtime: readNumber(block, 136, 12),
    type: TYPES[flag] ?? "other",
    flag,
    linkname: readString(block, 157, 100),
  };
}

/** The `key=value` records of a pax extended header. */
export function decodePax(data: Uint8Array): Map<string, string> {
  const records = new Map<string, string>();
  const buffer = Buffer.from(data);
  let at = 0;
  while (at < buffer.length) {
    if (buffer[at] === 0) break;
    const space = buffer.indexOf(0x20, at);
    if (space < 0) throw new TarFormatError("a malformed pax record");
    const length = Number(buffer.toString("latin1", at, space));
    if (!Number.isInteger(length) || length <= space - at + 1 || at + length > buffer.length) throw new TarFormatError("a malformed pax record length");
    const record = buffer.toString("utf8", space + 1, at + length - 1);
    const eq = record.indexOf("=");
    if (eq < 0) throw new TarFormatError("a pax record without =");
    records.set(record.slice(0, eq), record.slice(eq + 1));
    at += length;
  }
  return records;
}

function writeString(block: Buffer, offset: number, length: number, value: string): boolean {
  const bytes = Buffer.from(value, "utf8");
  if (bytes.length > length) return false;
  bytes.copy(block, offset);
  return true;
}

function writeOctal(block: Buffer, offset: number, length: number, value: number): boolean {
  const text = Math.floor(value).toString(8);
  if (text.length > length - 1) return false;
  block.write(text.padStart(length - 1, "0"), offset, "latin1");
  block[offset + length - 1] = 0;
  return true;
}

export interface EntryHeader {
  name: string;
  type: "file" | "directory" | "symlink";
  mode: number;
  size: number;
  mtime: number;
  linkname?: string;
}

const FLAG: Record<EntryHeader["type"], string> = { file: "0", directory: "5", symlink: "2" };

function ustarBlock(fields: { name: string; mode: number; size: number; mtime: number; flag: string; linkname: string }): { block: Buffer; fits: boolean } {
  const block = Buffer.alloc(BLOCK);
  let fits = writeString(block, 0, 100, fields.name);
  writeOctal(block, 100, 8, fields.mode & 0o7777);
  writeOctal(block, 108, 8, 0);
  writeOctal(block, 116, 8, 0);
  fits = writeOctal(block, 124, 12, fields.size) && fits;
  writeOctal(block, 136, 12, Math.max(0, Math.min(fields.mtime, 0o77777777777)));
  block.write(fields.flag, 156, "latin1");
  fits = writeString(block, 157, 100, fields.linkname) && fits;
  block.write("ustar\0", 257, "latin1");
  block.write("00", 263, "latin1");
  block.write("root", 265, "latin1");
  block.write("root", 297, "latin1");
  block.fill(0x20, 148, 156);
  let sum = 0;
  for (let i = 0; i < BLOCK; i++) sum += block[i]!;
  block.write(`${sum.toString(8).padStart(6, "0")}\0 `, 148, "latin1");
  return { block, fits };
}

function paxRecord(key: string, value: string): string {
  const body = ` ${key}=${value}\n`;
  const bodyLength = Buffer.byteLength(body);
  // The length counts its own digits: one more pass settles a carry (98 + 2 -> 101).
  let length = bodyLength + String(bodyLength).length;
  if (String(length).length !== String(bodyLength).length) length = bodyLength + String(length).length;
  return `${length}${body}`;
}

/** Zero bytes that pad `size` bytes of data to a whole block. */
export function padding(size: number): Buffer {
  const rest = size % BLOCK;
  return Buffer.alloc(rest === 0 ? 0 : BLOCK - rest);
}

/**
 * The header block(s) of one entry, owned by root: a plain ustar header when the name, link
 * and size fit, else a pax header carrying `path`, `linkpath` and `size` before it.
 */
export function encodeHeader(entry: EntryHeader): Buffer {
  const name = entry.type === "directory" && !entry.name.endsWith("/") ? `${entry.name}/` : entry.name;
  const fields = { name, mode: entry.mode, size: entry.type === "file" ? entry.size : 0, mtime: entry.mtime, flag: FLAG[entry.type], linkname: entry.linkname ?? "" };
  const plain = ustarBlock(fields);
  if (plain.fits) return plain.block;
  let records = paxRecord("path", name);
  if (fields.linkname !== "") records += paxRecord("linkpath", fields.linkname);
  if (fields.size > 0o77777777777) records += paxRecord("size", String(fields.size));
  const data = Buffer.from(records, "utf8");
  const paxHeader = ustarBlock({ name: "././@PaxHeader", mode: 0o644, size: data.length, mtime: entry.mtime, flag: "x", linkname: "" }).block;
  const short = ustarBlock({
    ...fields,
    name: Buffer.from(name).subarray(0, 99).toString("latin1").replace(/[^\x20-\x7e]/g, "_"),
    linkname: fields.linkname.length > 99 ? "" : fields.linkname,
    size: fields.size > 0o77777777777 ? 0 : fields.size,
  }).block;
  return Buffer.concat([paxHeader, data, padding(data.length), short]);
}

/** The end of an archive: two zero blocks. */
export const END_OF_ARCHIVE = Buffer.alloc(BLOCK * 2);
