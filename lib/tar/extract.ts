/**
 * Unpacking a tar stream that comes out of a sandbox into a host directory. The stream is
 * hostile input: every entry name and link target is checked before anything touches the disk.
 *
 * - Names: relative, no `..` component, no NUL, at most 4096 bytes (255 per component);
 *   a leading `./` is dropped. Anything else refuses the whole stream.
 * - Types: files, directories, symlinks and hard links only; a device node, FIFO or any other
 *   type refuses the stream.
 * - Parents: every existing component under the target is `lstat`ed and must be a real
 *   directory; a symlink (planted by an earlier entry or already there) is never followed.
 * - Symlinks: created as links, never followed; a link whose target is absolute or climbs out
 *   of the target directory is not created and is reported in `skipped`.
 * - Hard links: only to a regular file this same stream created.
 * - Modes: permission bits only (no setuid, setgid or sticky on the host); owners are ignored.
 * - Sizes: each pax or long-name record at most 1 MiB, the file bytes at most `maxBytes`, the
 *   entries at most `maxEntries`.
 *
 * Files land atomically (a temporary name in the same directory, then rename), so a reader
 * never sees half a file; directory modes are applied last, deepest first.
 */
import { randomBytes } from "node:crypto";
import { chmod, link, lstat, mkdir, open, rename, rm, symlink, unlink, utimes } from "node:fs/promises";
import { join, posix } from "node:path";
import { InvalidInputError } from "../errors.ts";
import { BLOCK, decodeHeader, decodePax, isZeroBlock, TarFormatError, type RawHeader } from "./header.ts";

export interface ExtractLimits {
  /** Total file bytes accepted (default 16 GiB). */
  maxBytes?: number;
  /** Entries accepted (default 1,000,000). */
  maxEntries?: number;
  /** Give `root` the mode of the archive's own `./` entry (for a directory made for it). */
  rootMode?: boolean;
}

export interface ExtractResult {
  files: number;
  directories: number;
  symlinks: number;
  bytes: number;
  /** Entries not created, with why (symlinks pointing out of the target). */
  skipped: { path: string; reason: string }[];
}

const MAX_META = 1024 * 1024;
const MAX_PATH = 4096;
const MAX_COMPONENT = 255;
/** Bytes read after the end marker (GNU tar pads to 10 KiB records) before giving up on them. */
const TRAILER_LIMIT = 1024 * 1024;

/** Thrown for anything the stream may not do; the message names the entry. */
export class UnsafeEntryError extends InvalidInputError {
  constructor(message: string) {
    super(message, { hint: "the sandbox sent an entry that would land outside the target or is not a plain file, directory or link; nothing of it was written" });
    this.name = "UnsafeEntryError";
  }
}

/** Pulls exact byte counts out of an async stream of chunks. */
class ByteReader {
  private chunks: Buffer[] = [];
  private buffered = 0;
  private done = false;
  private readonly iterator: AsyncIterator<Uint8Array>;

  constructor(source: AsyncIterable<Uint8Array>) {
    this.iterator = source[Symbol.asyncIterator]();
  }

  private async fill(n: number): Promise<boolean> {
    while (this.buffered < n && !this.done) {
      const next = await this.iterator.next();
      if (next.done) {
        this.done = true;
        break;
      }
      const chunk = Buffer.from(next.value.buffer, next.value.byteOffset, next.value.byteLength);
      if (chunk.length === 0) continue;
      this.chunks.push(chunk);
      this.buffered += chunk.length;
    }
    return this.buffered >= n;
  }

  /** Exactly n bytes, or undefined at a clean end of stream before any of them. */
  async read(n: number): Promise<Buffer | undefined> {
    if (!(await this.fill(n))) {
      if (this.buffered === 0) return undefined;
      throw new TarFormatError("the stream ended inside an entry");
    }
    return this.take(n);
  }

  /** Up to `max` bytes that are already buffered (or the next chunk); throws at the end. */
  async readSome(max: number): Promise<Buffer> {
    if (!(await this.fill(1))) throw new TarFormatError("the stream ended inside a file");
    return this.take(Math.min(max, this.buffered));
  }

  private take(n: number): Buffer {
    const head = this.chunks[0]!;
    if (head.length >= n) {
      const out = head.subarray(0, n);
      if (head.length === n) this.chunks.shift();
      else this.chunks[0] = head.subarray(n);
      this.buffered -= n;
      return out;
    }
    const out = Buffer.allocUnsafe(n);
    let at = 0;
    while (at < n) {
      const chunk = this.chunks[0]!;
      const part = Math.min(chunk.length, n - at);
      chunk.copy(out, at, 0, part);
      at += part;
      if (part === chunk.length) this.chunks.shift();
      else this.chunks[0] = chunk.subarray(part);
    }
    this.buffered -= n;
    return out;
  }

  async skip(n: number): Promise<void> {
    let left = n;
    while (left > 0) left -= (await this.readSome(left)).length;
  }

  /**
   * Reads to the end of the stream (tar pads archives to whole records after the end marker),
   * so the producer finishes normally; gives up past `limit` bytes. True when the end was met.
   */
  async drain(limit: number): Promise<boolean> {
    let seen = this.buffered;
    this.chunks = [];
    this.buffered = 0;
    while (!this.done && seen <= limit) {
      const next = await this.iterator.next();
      if (next.done) this.done = true;
      else seen += next.value.byteLength;
    }
    return this.done;
  }

  async return(): Promise<void> {
    await this.iterator.return?.();
  }
}

/** The checked, normalised relative path of an entry name, or "" for the root itself. */
export function safeEntryPath(name: string): string {
  if (name.includes("\0")) throw new UnsafeEntryError(`Cannot unpack entry ${JSON.stringify(name)}: its name holds a NUL byte`);
  if (Buffer.byteLength(name) > MAX_PATH) throw new UnsafeEntryError(`Cannot unpack an entry: its name is longer than ${MAX_PATH} bytes`);
  if (name.startsWith("/")) throw new UnsafeEntryError(`Cannot unpack entry "${name}": it is an absolute path`);
  const parts = name.split("/").filter((p) => p !== "" && p !== ".");
  for (const part of parts) {
    if (part === "..") throw new UnsafeEntryError(`Cannot unpack entry "${name}": it climbs out of the target with ..`);
    if (Buffer.byteLength(part) > MAX_COMPONENT) throw new UnsafeEntryError(`Cannot unpack entry "${name}": a component is longer than ${MAX_COMPONENT} bytes`);
  }
  return parts.join("/");
}

/** Whether a symlink at `path` with `target` stays inside the tree it is unpacked into. */
export function linkStaysInside(path: string, target: string): boolean {
  if (target === "" || target.startsWith("/") || target.includes("\0")) return false;
  const resolved = posix.normalize(posix.join(posix.dirname(path), target));
  return resolved !== ".." && !resolved.startsWith("../");
}

interface Pending {
  path?: string;
  linkpath?: string;
  size?: number;
  mtime?: number;
}

/**
 * Unpacks `source` into the existing directory `root`. Entries that already exist are replaced
 * (a directory only by a directory); nothing outside `root` is ever written or followed.
 */
export async function extractTar(source: AsyncIterable<Uint8Array>, root: string, limits: ExtractLimits = {}): Promise<ExtractResult> {
  const maxBytes = limits.maxBytes ?? 16 * 2 ** 30;
  const maxEntries = limits.maxEntries ?? 1_000_000;
  const reader = new ByteReader(source);
  const result: ExtractResult = { files: 0, directories: 0, symlinks: 0, bytes: 0, skipped: [] };
  const dirModes: { path: string; mode: number; mtime: number }[] = [];
  const created = new Set<string>();
  /** Directories known to be real (not links) under root, so each is checked once. */
  const realDirs = new Set<string>([""]);
  let pending: Pending = {};
  let entries = 0;

  const ensureDir = async (relative: string): Promise<void> => {
    if (realDirs.has(relative)) return;
    await ensureDir(posix.dirname(relative) === "." ? "" : posix.dirname(relative));
    const full = join(root, relative);
    const info = await lstat(full).catch((error: NodeJS.ErrnoException) => {
      if (error.code === "ENOENT") return undefined;
      throw error;
    });
    if (info === undefined) await mkdir(full, { mode: 0o755 });
    else if (!info.isDirectory()) throw new UnsafeEntryError(`Cannot unpack into "${relative}": it is ${info.isSymbolicLink() ? "a symlink" : "not a directory"} on this host, and is never followed`);
    realDirs.add(relative);
  };

  /** Removes whatever non-directory is at `full` so a new entry can take its place. */
  const clearSpot = async (full: string, relative: string): Promise<void> => {
    const info = await lstat(full).catch(() => undefined);
    if (info === undefined) return;
    if (info.isDirectory()) throw new UnsafeEntryError(`Cannot unpack "${relative}": a directory of that name exists on this host`);
    await unlink(full);
  };

  const readMeta = async (header: RawHeader): Promise<Buffer> => {
    if (header.size > MAX_META) throw new UnsafeEntryError(`Cannot unpack: a ${header.type} record of ${header.size} bytes is over the ${MAX_META}-byte limit`);
    const data = (await reader.read(header.size)) ?? Buffer.alloc(0);
    await reader.skip(paddingOf(header.size));
    return data;
  };

  try {
    for (;;) {
      const block = await reader.read(BLOCK);
      if (block === undefined || isZeroBlock(block)) break;
      const header = decodeHeader(block);
      if (header.type === "pax" || header.type === "pax-global") {
        const records = decodePax(await readMeta(header));
        if (header.type === "pax") {
          if (records.has("path")) pending.path = records.get("path")!;
          if (records.has("linkpath")) pending.linkpath = records.get("linkpath")!;
          if (records.has("size")) pending.size = Number(records.get("size"));
          if (records.has("mtime")) pending.mtime = Number(records.get("mtime"));
        }
        continue;
      }
      if (header.type === "gnu-longname" || header.type === "gnu-longlink") {
        const text = (await readMeta(header)).toString("utf8").replace(/\0+$/, "");
        if (header.type === "gnu-longname") pending.path = text;
        else pending.linkpath = text;
        continue;
      }
      const name = pending.path ?? header.name;
      const linkname = pending.linkpath ?? header.linkname;
      const size = pending.size ?? header.size;
      const mtime = pending.mtime ?? header.mtime;
      pending = {};
      if (!Number.isSafeInteger(size) || size < 0) throw new UnsafeEntryError(`Cannot unpack "${name}": a bad size`);
      if (++entries > maxEntries) throw new UnsafeEntryError(`Cannot unpack: more than ${maxEntries} entries`);
      if (header.type === "other") {
        throw new UnsafeEntryError(`Cannot unpack "${name}": entries of type ${JSON.stringify(header.flag)} (device nodes, FIFOs and the like) are refused`);
      }
      const path = safeEntryPath(name);
      const dataSize = header.type === "file" ? size : 0;
      if (path === "") {
        await reader.skip(dataSize + paddingOf(dataSize));
        if (header.type === "directory" && limits.rootMode === true) dirModes.push({ path: root, mode: header.mode & 0o777, mtime: header.mtime });
        continue;
      }
      const parent = posix.dirname(path) === "." ? "" : posix.dirname(path);
      await ensureDir(parent);
      const full = join(root, path);
      const mode = header.mode & 0o777;

      if (header.type === "directory") {
        await reader.skip(dataSize + paddingOf(dataSize));
        const info = await lstat(full).catch(() => undefined);
        if (info !== undefined && !info.isDirectory()) await unlink(full);
        if (info === undefined || !info.isDirectory()) await mkdir(full, { mode: 0o700 });
        realDirs.add(path);
        dirModes.push({ path: full, mode, mtime });
        result.directories++;
      } else if (header.type === "symlink") {
        if (!linkStaysInside(path, linkname)) {
          result.skipped.push({ path, reason: `a symlink to ${JSON.stringify(linkname)}, outside the target` });
          continue;
        }
        await clearSpot(full, path);
        await symlink(linkname, full);
        realDirs.delete(path);
        result.symlinks++;
      } else if (header.type === "hardlink") {
        const target = safeEntryPath(linkname);
        if (!created.has(target)) {
          throw new UnsafeEntryError(`Cannot unpack "${path}": a hard link to "${linkname}", which is not a file of this archive`);
        }
        const temp = tempName(full);
        await link(join(root, target), temp);
        await rename(temp, full).catch(async (error: unknown) => {
          await rm(temp, { force: true });
          throw error;
        });
        created.add(path);
        result.files++;
      } else {
        if (result.bytes + size > maxBytes) throw new UnsafeEntryError(`Cannot unpack "${path}": the download is over its limit of ${maxBytes} bytes`);
        const existing = await lstat(full).catch(() => undefined);
        if (existing?.isDirectory()) throw new UnsafeEntryError(`Cannot unpack "${path}": a directory of that name exists on this host`);
        const temp = tempName(full);
        const handle = await open(temp, "wx", 0o600);
        try {
          let left = size;
          while (left > 0) {
            const chunk = await reader.readSome(left);
            await handle.write(chunk);
            left -= chunk.length;
          }
          await handle.close();
          await reader.skip(paddingOf(size));
          await chmod(temp, mode);
          await utimes(temp, mtime, mtime);
          await rename(temp, full);
        } catch (error) {
          await handle.close().catch(() => {});
          await rm(temp, { force: true });
          throw error;
        }
        realDirs.delete(path);
        created.add(path);
        result.files++;
        result.bytes += size;
      }
    }
    // A hostile sender could keep going forever after the end marker: stop listening then.
    if (!(await reader.drain(TRAILER_LIMIT))) await reader.return().catch(() => {});
  } catch (error) {
    await reader.return().catch(() => {});
    if (error instanceof TarFormatError) {
      throw new InvalidInputError(`Cannot unpack the stream: ${error.message}`, { hint: "the sandbox sent something that is not a well-formed tar stream" });
    }
    throw error;
  }
  for (const dir of dirModes.reverse()) {
    await chmod(dir.path, dir.mode);
    await utimes(dir.path, dir.mtime, dir.mtime).catch(() => {});
  }
  return result;
}

function paddingOf(size: number): number {
  const rest = size % BLOCK;
  return rest === 0 ? 0 : BLOCK - rest;
}

function tempName(full: string): string {
  return `${posix.dirname(full)}/.${posix.basename(full).slice(0, 200)}.smolvm-${randomBytes(4).toString("hex")}`;
}


