/**
 * Packing a listed tree into a tar stream, read file by file as the consumer pulls (nothing is
 * buffered beyond one chunk). Entries are taken as listed (tree.ts): symlinks are written as
 * links and never followed, so a link pointing out of the tree stays a link.
 */
import { open } from "node:fs/promises";
import { join } from "node:path";
import { END_OF_ARCHIVE, encodeHeader, padding } from "./header.ts";
import type { TreeEntry } from "./tree.ts";

const CHUNK = 256 * 1024;
const COALESCE = 64 * 1024;

export interface PackProgress {
  /** File bytes sent so far and the total of the listed sizes. */
  (done: number, total: number): void;
}

/**
 * The tar stream of `entries` under `root`, in chunks of at least 64 KiB (but the last): a tree
 * of small files would otherwise cost one channel frame per header and per file.
 */
export async function* packTree(root: string, entries: readonly TreeEntry[], onProgress?: PackProgress): AsyncGenerator<Buffer> {
  let pending: Buffer[] = [];
  let pendingBytes = 0;
  for await (const piece of packPieces(root, entries, onProgress)) {
    pending.push(piece);
    pendingBytes += piece.length;
    if (pendingBytes >= COALESCE) {
      yield pending.length === 1 ? pending[0]! : Buffer.concat(pending, pendingBytes);
      pending = [];
      pendingBytes = 0;
    }
  }
  if (pendingBytes > 0) yield Buffer.concat(pending, pendingBytes);
}

/** Headers, data and padding one by one. A file that shrank meanwhile is padded with zeros. */
async function* packPieces(root: string, entries: readonly TreeEntry[], onProgress?: PackProgress): AsyncGenerator<Buffer> {
  const total = entries.reduce((sum, e) => sum + (e.type === "file" ? e.size : 0), 0);
  let done = 0;
  onProgress?.(0, total);
  for (const entry of entries) {
    yield encodeHeader({
      name: entry.path,
      type: entry.type,
      mode: entry.mode,
      size: entry.type === "file" ? entry.size : 0,
      mtime: entry.mtimeSec,
      ...(entry.linkname === undefined ? {} : { linkname: entry.linkname }),
    });
    if (entry.type !== "file" || entry.size === 0) continue;
    const handle = await open(join(root, entry.path), "r");
    try {
      let left = entry.size;
      while (left > 0) {
        const buffer = Buffer.allocUnsafe(Math.min(CHUNK, left));
        const { bytesRead } = await handle.read(buffer, 0, buffer.length, entry.size - left);
        if (bytesRead === 0) {
          // Shrunk since it was listed: keep the archive well-formed.
          buffer.fill(0);
          left -= buffer.length;
          yield buffer;
          continue;
        }
        left -= bytesRead;
        done += bytesRead;
        yield bytesRead === buffer.length ? buffer : buffer.subarray(0, bytesRead);
        onProgress?.(done, total);
      }
    } finally {
      await handle.close();
    }
    const pad = padding(entry.size);
    if (pad.length > 0) yield pad;
  }
  yield END_OF_ARCHIVE;
}
