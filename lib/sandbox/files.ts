/**
 * `vm.files`: files in the sandbox, written and read (`write`, `read`, `readStream`), or copied
 * from and to this host (`upload`, `download`; whole directories as tar with `uploadDir`,
 * `downloadDir`, in dirs.ts), over the channel's streamed file operations.
 * Paths and modes are checked here, before anything is sent (guest-paths.ts has the path rules);
 * the I/O is in _transfer.ts, loaded when a transfer runs.
 */
import type { Readable } from "node:stream";
import type { FileStream } from "../agent/types.ts";
import type { Channel } from "../channels/types.ts";
import { InvalidInputError, SmolError } from "../errors.ts";
import { requireGuestPath } from "./guest-paths.ts";
import type { DirTransferResult, DownloadDirOptions, UploadDirOptions } from "./dirs.ts";

/** Bytes moved so far and the total (the file's size), for progress bars. */
export type TransferProgress = (done: number, total: number) => void;

export interface UploadOptions {
  /** Permission bits in the guest; default: the local file's. */
  mode?: number;
  /** Create missing parent directories in the guest (default true). */
  mkdirParents?: boolean;
  onProgress?: TransferProgress;
  /** Gives up (and removes the partial file) after this long. */
  timeoutMs?: number;
  signal?: AbortSignal;
}

export interface DownloadOptions {
  /** Create missing parent directories on the host (default true). */
  mkdirParents?: boolean;
  onProgress?: TransferProgress;
  timeoutMs?: number;
  signal?: AbortSignal;
}

export interface WriteFileOptions {
  /** Permission bits, applied exactly (default 0o644). */
  mode?: number;
  /** Create missing parent directories (default true). */
  mkdirParents?: boolean;
  timeoutMs?: number;
  signal?: AbortSignal;
}

export interface ReadFileOptions {
  /** Gives up after this long (the whole read). */
  timeoutMs?: number;
  signal?: AbortSignal;
  /**
   * `read` only: the most it reads into memory (default 256 MiB); a bigger file fails with
   * RESOURCE_EXHAUSTED (stream it with `readStream`, or copy it with `download`).
   */
  maxBytes?: number;
}

/** What `read` holds in memory at most unless told otherwise. */
const READ_MAX_BYTES = 256 * 1024 * 1024;

/** What a copy did: where the file landed, how big it is and its permission bits. */
export interface TransferResult {
  path: string;
  size: number;
  mode: number;
}

/** The data `vm.files.write` takes: bytes, a string (UTF-8), or a stream of bytes. */
export type FileData = string | Uint8Array | Readable | AsyncIterable<Uint8Array>;

export class Filesystem {
  /** `channel`: the sandbox's open channel (the SDK handle opens it on first use). */
  constructor(private readonly channel: () => Promise<Channel>) {}

  /**
   * Writes bytes, a string or a stream to a guest file, atomically (mode 0o644 unless given;
   * parents created unless `mkdirParents: false`).
   *
   * ```ts
   * await vm.files.write("/srv/config.json", JSON.stringify(config));
   * ```
   */
  async write(guest: string, data: FileData, options: WriteFileOptions = {}): Promise<TransferResult> {
    requireGuestPath(guest, { file: true });
    checkMode(options.mode);
    return (await import("./_transfer.ts")).writeGuestFile(await this.channel(), guest, data, options);
  }

  /**
   * Reads a whole guest file into memory.
   *
   * ```ts
   * const text = (await vm.files.read("/etc/os-release")).toString("utf8");
   * ```
   */
  async read(guest: string, options: ReadFileOptions = {}): Promise<Buffer> {
    const limit = options.maxBytes ?? READ_MAX_BYTES;
    const tooBig = () => new SmolError("RESOURCE_EXHAUSTED", `Cannot read "${guest}" into memory: it is larger than ${limit} bytes`, {
      hint: "stream it with readStream, or copy it with download; or raise maxBytes",
      details: { maxBytes: limit },
    });
    const { size, stream } = await this.readStream(guest, options);
    if (size > limit) {
      stream.destroy();
      throw tooBig();
    }
    // The size is the guest's word: what arrives is counted too.
    const chunks: Buffer[] = [];
    let total = 0;
    for await (const chunk of stream) {
      total += (chunk as Buffer).length;
      if (total > limit) {
        stream.destroy();
        throw tooBig();
      }
      chunks.push(chunk as Buffer);
    }
    return Buffer.concat(chunks);
  }

  /**
   * Opens a guest file as a stream; resolves with its size and mode once it is open.
   *
   * ```ts
   * const { size, stream } = await vm.files.readStream("/srv/big.bin");
   * ```
   */
  async readStream(guest: string, options: ReadFileOptions = {}): Promise<FileStream> {
    requireGuestPath(guest, { file: true });
    return (await import("./_transfer.ts")).openGuestFile(await this.channel(), guest, options);
  }

  /**
   * Copies a local file into the sandbox. A guest path ending in `/` means "into this directory"
   * (the file keeps its name); the guest file gets the local file's mode unless `mode` is given.
   *
   * ```ts
   * await vm.files.upload("./build/app", "/usr/local/bin/"); // -> /usr/local/bin/app, mode kept
   * ```
   */
  async upload(local: string, guest: string, options: UploadOptions = {}): Promise<TransferResult> {
    requireGuestPath(guest);
    checkMode(options.mode);
    return (await import("./_transfer.ts")).upload(await this.channel(), local, guest, options);
  }

  /**
   * Copies a guest file to this host. A local path that is a directory (or ends in `/`) receives
   * the file under its guest name; the local file gets the guest file's permission bits.
   *
   * ```ts
   * await vm.files.download("/var/log/app.log", "./logs/");
   * ```
   */
  async download(guest: string, local: string, options: DownloadOptions = {}): Promise<TransferResult> {
    requireGuestPath(guest, { file: true });
    return (await import("./_transfer.ts")).download(await this.channel(), guest, local, options);
  }

  /**
   * Copies a local directory's contents into a guest directory (created or merged), as tar:
   * modes, empty directories and symlinks kept, links never followed. `select: "workspace"`
   * sends what Git shows (plus `.git`), or skips node_modules and the like outside a Git tree.
   *
   * ```ts
   * await vm.files.uploadDir("./src", "/srv/app/src");
   * ```
   */
  async uploadDir(local: string, guest: string, options: UploadDirOptions = {}): Promise<DirTransferResult> {
    requireGuestPath(guest);
    const dirs = await import("./dirs.ts");
    return dirs.uploadDir(await this.channel(), local, guest, options);
  }

  /**
   * Copies a guest directory's contents into a local directory (new: whole or not at all;
   * existing: merged file by file). Every entry is checked: nothing lands or is followed outside
   * the target, no devices, no setuid bits; links pointing outside are skipped (`skipped`).
   *
   * ```ts
   * const { files } = await vm.files.downloadDir("/srv/app/dist", "./dist");
   * ```
   */
  async downloadDir(guest: string, local: string, options: DownloadDirOptions = {}): Promise<DirTransferResult> {
    requireGuestPath(guest);
    const dirs = await import("./dirs.ts");
    return dirs.downloadDir(await this.channel(), guest, local, options);
  }
}

/** Refuses a mode that is not permission bits. */
export function checkMode(mode: number | undefined): void {
  if (mode !== undefined && (!Number.isInteger(mode) || mode < 0 || mode > 0o7777)) {
    throw new InvalidInputError(`Invalid file mode ${mode}: it must be permission bits from 0 to 0o7777`, {
      hint: "pass e.g. 0o644 or 0o755",
    });
  }
}
