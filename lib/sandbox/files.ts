/**
 * `vm.files`: files in the sandbox, written and read (`write`, `read`, `readStream`), or copied
 * from and to this host (`upload`, `download`; whole directories as tar with `uploadDir`,
 * `downloadDir`, in dirs.ts), over the channel's streamed file operations.
 * Path rules (pure, tested without a VM) live in guest-paths.ts; this module does the I/O: local
 * files are streamed, never read whole, and downloads land atomically (temporary file + rename)
 * with the guest file's permission bits.
 */
import { createReadStream, createWriteStream } from "node:fs";
import { chmod, mkdir, rename, rm, stat } from "node:fs/promises";
import { basename, dirname, join } from "node:path";
import type { Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import type { FileStream } from "../agent/types.ts";
import type { Channel } from "../channels/types.ts";
import { InvalidInputError, NotFoundError, SmolError } from "../errors.ts";
import { guestTarget, requireGuestPath } from "./guest-paths.ts";
import { randomHex } from "../util/random.ts";
import type { DirTransferResult, DownloadDirOptions, UploadDirOptions } from "./dirs.ts";

const GUEST_WRITE_HINT = "check that the guest directory exists (or let smolvm create it) and is not a file";

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
}

/** What a copy did: where the file landed, how big it is and its permission bits. */
export interface TransferResult {
  path: string;
  size: number;
  mode: number;
}

function callOptions(options: { timeoutMs?: number; signal?: AbortSignal }) {
  return {
    ...(options.timeoutMs === undefined ? {} : { timeoutMs: options.timeoutMs }),
    ...(options.signal === undefined ? {} : { signal: options.signal }),
  };
}

function checkMode(mode: number | undefined): void {
  if (mode !== undefined && (!Number.isInteger(mode) || mode < 0 || mode > 0o7777)) {
    throw new InvalidInputError(`Invalid file mode ${mode}: it must be permission bits from 0 to 0o7777`, {
      hint: "pass e.g. 0o644 or 0o755",
    });
  }
}

/** Stats a local file to upload; refuses what is missing or not a regular file. */
async function localSource(local: string): Promise<{ size: number; mode: number }> {
  let info;
  try {
    info = await stat(local);
  } catch (cause) {
    throw new NotFoundError(`Cannot upload "${local}": no such file on this host`, {
      hint: "check the local path (it is relative to the current directory)",
      cause,
    });
  }
  if (!info.isFile()) {
    throw new InvalidInputError(`Cannot upload "${local}": it is ${info.isDirectory() ? "a directory" : "not a regular file"}`, {
      hint: "upload a directory with uploadDir (the CLI's `file upload` does so by itself)",
    });
  }
  return { size: info.size, mode: info.mode & 0o7777 };
}

/** Counts bytes as the consumer pulls them, so progress follows the flow-controlled transfer. */
async function* counted(source: AsyncIterable<Uint8Array>, total: number, onProgress?: TransferProgress) {
  let done = 0;
  onProgress?.(0, total);
  for await (const chunk of source) {
    yield chunk;
    done += chunk.length;
    onProgress?.(done, total);
  }
}

async function upload(client: Channel, local: string, guest: string, options: UploadOptions = {}): Promise<TransferResult> {
  checkMode(options.mode);
  const source = await localSource(local);
  const path = guestTarget(guest, basename(local));
  const mode = options.mode ?? source.mode;
  const stream = createReadStream(local, { highWaterMark: 64 * 1024 });
  try {
    const { size } = await client.writeFile(path, counted(stream, source.size, options.onProgress), {
      mode,
      mkdirParents: options.mkdirParents ?? true,
      ...callOptions(options),
    });
    return { path, size, mode };
  } catch (error) {
    throw withAction(error, `Cannot upload "${local}" to "${path}"`, GUEST_WRITE_HINT);
  } finally {
    stream.destroy();
  }
}

async function writeGuestFile(
  client: Channel,
  guest: string,
  data: FileData,
  options: WriteFileOptions = {},
): Promise<TransferResult> {
  checkMode(options.mode);
  const path = requireGuestPath(guest, { file: true });
  const mode = options.mode ?? 0o644;
  try {
    const { size } = await client.writeFile(path, data, { mode, mkdirParents: options.mkdirParents ?? true, ...callOptions(options) });
    return { path, size, mode };
  } catch (error) {
    throw withAction(error, `Cannot write "${path}" in the sandbox`, GUEST_WRITE_HINT);
  }
}

async function openGuestFile(client: Channel, guest: string, options: ReadFileOptions = {}): Promise<FileStream> {
  const path = requireGuestPath(guest, { file: true });
  try {
    return await client.readFile(path, callOptions(options));
  } catch (error) {
    throw withAction(error, `Cannot read "${path}" in the sandbox`, "check the path, e.g. with `ls` through `smolvm exec`");
  }
}

/** Where a download lands: into `local` when it is a directory (or ends with `/`). */
async function localTarget(local: string, guestPath: string): Promise<string> {
  if (local.endsWith("/")) return join(local, basename(guestPath));
  try {
    if ((await stat(local)).isDirectory()) return join(local, basename(guestPath));
  } catch {
    // Does not exist yet: it names the file.
  }
  return local;
}

async function download(client: Channel, guest: string, local: string, options: DownloadOptions = {}): Promise<TransferResult> {
  const guestPath = requireGuestPath(guest, { file: true });
  const target = await localTarget(local, guestPath);
  const dir = dirname(target);
  if (options.mkdirParents ?? true) {
    await mkdir(dir, { recursive: true });
  } else if (!(await stat(dir).then((s) => s.isDirectory(), () => false))) {
    throw new NotFoundError(`Cannot download "${guestPath}" to "${target}": the directory "${dir}" does not exist`, {
      hint: "create it first, or drop --no-create-dirs",
    });
  }
  const handle = await openGuestFile(client, guestPath, options);
  // Permission bits only: a sandbox must not plant setuid files on the host.
  const mode = handle.mode & 0o777;
  const temp = join(dir, `.${basename(target)}.smolvm-${randomHex(4)}`);
  try {
    await pipeline(counted(handle.stream, handle.size, options.onProgress), createWriteStream(temp, { mode: 0o600 }));
    await chmod(temp, mode);
    const { size } = await stat(temp);
    await rename(temp, target);
    return { path: target, size, mode };
  } catch (error) {
    handle.stream.destroy();
    await rm(temp, { force: true });
    throw withAction(error, `Cannot download "${guestPath}" to "${target}"`);
  }
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
    return writeGuestFile(await this.channel(), guest, data, options);
  }

  /**
   * Reads a whole guest file into memory.
   *
   * ```ts
   * const text = (await vm.files.read("/etc/os-release")).toString("utf8");
   * ```
   */
  async read(guest: string, options: ReadFileOptions = {}): Promise<Buffer> {
    const { stream } = await this.readStream(guest, options);
    const chunks: Buffer[] = [];
    for await (const chunk of stream) chunks.push(chunk as Buffer);
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
    return openGuestFile(await this.channel(), guest, options);
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
    return upload(await this.channel(), local, guest, options);
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
    return download(await this.channel(), guest, local, options);
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

/**
 * Prefixes the failed action to an error that does not name it yet (agent errors are terse),
 * and gives it a hint when it has none.
 */
function withAction(error: unknown, action: string, hint?: string): unknown {
  if (!(error instanceof SmolError)) return error;
  if (!error.message.startsWith("Cannot ")) {
    error.message = `${action}: ${error.message.length > 0 ? error.message[0]!.toLowerCase() + error.message.slice(1) : error.code}`;
  }
  if (error.hint === undefined && hint !== undefined) Object.defineProperty(error, "hint", { value: hint });
  return error;
}
