/**
 * Fetching one published file and unpacking it in one pass: the compressed bytes go to a
 * `.partial` file (kept when the transfer breaks, so the next attempt resumes with an HTTP
 * Range) and, at the same time, through SHA-256 and zstd into a sparse output file. The output
 * counts only once the compressed file's size and SHA-256 match the manifest, zstd has checked
 * its own content checksum (XXH64 over the decoded bytes, which every release frame must
 * carry), and the unpacked size matches; until then it sits in the caller's temp directory.
 *
 * The unpacked file's SHA-256 is in the manifest but not recomputed here: the decoded bytes are
 * a function of the verified compressed ones, and hashing them costs 0.8 s per GiB here (the
 * 384 MiB base image: 0.3 s, more than its whole download and unpack from a loopback mirror).
 * `sha256sum` against the manifest checks a copy by hand.
 *
 * zstd comes from the runtime (`node:zlib`'s createZstdDecompress, in Bun and Deno): streaming,
 * in a worker thread, and nothing to install (see docs/images.md).
 */
import { createHash } from "node:crypto";
import { createReadStream } from "node:fs";
import { mkdir, open, rm, stat, type FileHandle } from "node:fs/promises";
import { dirname } from "node:path";
import { Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import { constants as zlibConstants, createZstdDecompress } from "node:zlib";
import type { FileEntry } from "./manifest.ts";
import { DownloadError, httpGet } from "./http.ts";
import { SparseWriter } from "./sparse.ts";

/** The largest zstd window a release uses (`--long=27`): also what the decoder may allocate. */
export const ZSTD_WINDOW_LOG = 27;

export interface FetchUnpackOptions {
  url: string;
  /** For errors and progress: `image "base" for x86_64 (base-x86_64.ext4.zst)`. */
  what: string;
  entry: FileEntry;
  /** The compressed bytes so far; created, appended to, removed once unpacked or found bad. */
  partialPath: string;
  /** The unpacked file to create (in a temp directory the caller publishes). */
  outputPath: string;
  connectTimeoutMs: number;
  stallTimeoutMs: number;
  signal?: AbortSignal;
  /** Compressed bytes in hand (resumed ones included) against the total. */
  onBytes?: (done: number, total: number) => void;
}

export interface FetchUnpackResult {
  /** Bytes that came over the network this time. */
  downloaded: number;
  /** Bytes taken from an earlier, interrupted attempt. */
  resumedFrom: number;
}

export async function fetchAndUnpack(o: FetchUnpackOptions): Promise<FetchUnpackResult> {
  const { entry } = o;
  const fail = (reason: ConstructorParameters<typeof DownloadError>[0], why: string, hint: string, cause?: unknown) =>
    new DownloadError(reason, `Cannot download ${o.what} from "${o.url}": ${why}`, o.url, {
      hint,
      ...(cause === undefined ? {} : { cause }),
    });

  let have = await sizeOf(o.partialPath);
  if (have > entry.size) {
    await rm(o.partialPath, { force: true });
    have = 0;
  }
  // Ask the server before reading the partial file: if it ignores the Range, the partial bytes
  // must not reach the decompressor at all.
  let body: Awaited<ReturnType<typeof httpGet>> | undefined;
  if (have < entry.size) {
    try {
      body = await httpGet(o.url, {
        what: o.what,
        ...(have > 0 ? { from: have } : {}),
        connectTimeoutMs: o.connectTimeoutMs,
        stallTimeoutMs: o.stallTimeoutMs,
        ...(o.signal ? { signal: o.signal } : {}),
      });
    } catch (error) {
      // 416: the server's file ends before our partial one does; what we have is not its prefix.
      if (error instanceof DownloadError && /answered 416/.test(error.message)) await rm(o.partialPath, { force: true });
      throw error;
    }
    if (body.status === 200 && have > 0) have = 0;
    if (body.status === 206 && body.rangeStart !== have) {
      body.cancel();
      await rm(o.partialPath, { force: true });
      throw fail("http", `the server resumed at byte ${body.rangeStart}, not ${have}`, "run the command again to download from the start");
    }
    if (body.length !== undefined && have + body.length !== entry.size) {
      body.cancel();
      await rm(o.partialPath, { force: true });
      throw fail("size", `the server's file is ${have + body.length} bytes, the manifest says ${entry.size}`,
        "the mirror's file does not match its manifest: rebuild or re-upload the release");
    }
  }
  const resumedFrom = have;
  const compressedHash = createHash("sha256");
  let compressed = 0;
  let partial: FileHandle | undefined;
  let sourceDone = false;

  let head = new Uint8Array(0);
  /** The first frame's header, once its first bytes are in (see checkFrameHeader). */
  const inspect = (bytes: Uint8Array) => {
    if (head.length >= FRAME_HEADER_BYTES) return;
    head = Buffer.concat([head, bytes.subarray(0, FRAME_HEADER_BYTES - head.length)]);
    if (head.length < FRAME_HEADER_BYTES) return;
    const problem = checkFrameHeader(head);
    if (problem !== undefined) {
      throw fail("format", problem, "rebuild the release with `smolvm release build`, which writes checksummed zstd frames");
    }
  };

  async function* source(): AsyncGenerator<Uint8Array> {
    if (have > 0) {
      for await (const chunk of createReadStream(o.partialPath, { start: 0, end: have - 1, highWaterMark: 1 << 20 })) {
        const bytes = chunk as Buffer;
        inspect(bytes);
        compressedHash.update(bytes);
        compressed += bytes.length;
        o.onBytes?.(compressed, entry.size);
        yield bytes;
      }
    }
    if (body !== undefined) {
      await mkdir(dirname(o.partialPath), { recursive: true });
      partial = await open(o.partialPath, have > 0 ? "r+" : "w");
      for await (const chunk of body.chunks) {
        if (compressed + chunk.length > entry.size) {
          body.cancel();
          throw fail("size", `the server sent more than the manifest's ${entry.size} bytes`,
            "the mirror's file does not match its manifest: rebuild or re-upload the release");
        }
        await writeAll(partial, chunk, compressed);
        inspect(chunk);
        compressedHash.update(chunk);
        compressed += chunk.length;
        o.onBytes?.(compressed, entry.size);
        yield chunk;
      }
    }
    if (compressed !== entry.size) {
      throw fail("size", `the transfer ended after ${compressed} of ${entry.size} bytes`, "run the command again to resume where it stopped");
    }
    const actual = compressedHash.digest("hex");
    if (actual !== entry.sha256) {
      await rm(o.partialPath, { force: true });
      throw fail("checksum", `its SHA-256 is ${actual}, the manifest says ${entry.sha256}`,
        "the file was altered or damaged on the way; it was deleted, run the command again to download it afresh");
    }
    sourceDone = true;
  }

  const writer = await SparseWriter.create(o.outputPath);
  try {
    await pipeline(
      Readable.from(source(), { objectMode: false }),
      createZstdDecompress({ chunkSize: 1 << 20, params: { [zlibConstants.ZSTD_d_windowLogMax]: ZSTD_WINDOW_LOG } }),
      async function sink(chunks: AsyncIterable<Buffer>) {
        for await (const chunk of chunks) {
          if (writer.size + chunk.length > entry.unpackedSize) {
            throw fail("size", `it unpacks to more than the manifest's ${entry.unpackedSize} bytes`,
              "the mirror's file does not match its manifest: rebuild or re-upload the release");
          }
          try {
            await writer.write(chunk);
          } catch (cause) {
            throw diskError(o, cause);
          }
        }
      },
    );
    const size = await writer.finish().catch((cause) => {
      throw diskError(o, cause);
    });
    if (size !== entry.unpackedSize) {
      throw fail("size", `it unpacks to ${size} bytes, the manifest says ${entry.unpackedSize}`, "rebuild the release with `smolvm release build`");
    }
  } catch (error) {
    await writer.abandon();
    await rm(o.outputPath, { force: true });
    body?.cancel();
    // A stream that is not a checksummed zstd frame will not become one on a resume.
    if (error instanceof DownloadError && error.reason === "format") await rm(o.partialPath, { force: true });
    if (error instanceof DownloadError) throw error;
    if (!sourceDone && isZstdError(error)) {
      // The stream is not what was signed (the checksum would have said so at the end).
      await rm(o.partialPath, { force: true });
      throw fail("checksum", `it is not a valid zstd stream (${(error as Error).message})`,
        "the file was altered or damaged on the way; it was deleted, run the command again to download it afresh", error);
    }
    if (isDiskError(error)) throw diskError(o, error);
    throw fail("http", (error as Error).message, "run the command again to resume where it stopped", error);
  } finally {
    await (partial as FileHandle | undefined)?.close().catch(() => {});
  }
  await rm(o.partialPath, { force: true });
  return { downloaded: compressed - resumedFrom, resumedFrom };
}

const ZSTD_MAGIC = 0xfd2fb528;
const FRAME_HEADER_BYTES = 5;

/**
 * Why a zstd stream's first frame header is unacceptable, or undefined: it must be a zstd frame
 * (not a skippable or legacy one) whose descriptor sets Content_Checksum_flag (bit 2), so that
 * the decoder checks the decoded bytes against the frame's XXH64.
 */
export function checkFrameHeader(head: Uint8Array): string | undefined {
  const view = Buffer.from(head.buffer, head.byteOffset, head.length);
  if (view.length < FRAME_HEADER_BYTES || view.readUInt32LE(0) !== ZSTD_MAGIC) return "it is not a zstd file";
  if ((view[4]! & 0x04) === 0) return "its zstd frame carries no content checksum";
  return undefined;
}

async function sizeOf(path: string): Promise<number> {
  try {
    return (await stat(path)).size;
  } catch {
    return 0;
  }
}

async function writeAll(handle: FileHandle, data: Uint8Array, position: number): Promise<void> {
  let offset = 0;
  while (offset < data.length) {
    const { bytesWritten } = await handle.write(data, offset, data.length - offset, position + offset);
    offset += bytesWritten;
  }
}

function isZstdError(error: unknown): boolean {
  const code = (error as { code?: string }).code ?? "";
  return code.startsWith("ZSTD_") || /zstd|corrupt|frame|checksum/i.test((error as Error).message ?? "");
}

function isDiskError(error: unknown): boolean {
  return ["ENOSPC", "EDQUOT", "EIO", "EROFS", "EFBIG"].includes((error as NodeJS.ErrnoException).code ?? "");
}

function diskError(o: FetchUnpackOptions, cause: unknown): DownloadError {
  if (cause instanceof DownloadError) return cause;
  const code = (cause as NodeJS.ErrnoException).code;
  const where = dirname(dirname(o.outputPath));
  const why = code === "ENOSPC" || code === "EDQUOT" ? `the disk is full (${where})` : `writing to ${where} failed (${(cause as Error).message})`;
  return new DownloadError("disk", `Cannot unpack ${o.what} from "${o.url}": ${why}`, o.url, {
    cause,
    hint: `it needs ${Math.ceil(o.entry.unpackedSize / 2 ** 20)} MiB at most; free some space (\`smolvm prune\`) or point SMOLVM_CACHE at a larger disk`,
  });
}
