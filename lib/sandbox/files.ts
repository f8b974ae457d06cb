/**
 * Copying files between the host and a sandbox over the agent's streamed `writeFile` and
 * `readFile` operations. Path rules (pure, tested without a VM) live in `_paths.ts`; this module
 * does the I/O: local files are streamed, never read whole, and downloads land atomically
 * (temporary file + rename) with the guest file's permission bits.
 */
import { createReadStream, createWriteStream } from "node:fs";
import { chmod, mkdir, rename, rm, stat } from "node:fs/promises";
import { basename, dirname, join } from "node:path";
import type { Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import type { Channel } from "../channels/types.ts";
import { InvalidInputError, NotFoundError, SmolError } from "../errors.ts";
import { guestTarget, requireGuestPath } from "./_paths.ts";
import { randomHex } from "../util/random.ts";

const GUEST_WRITE_HINT = "check that the guest directory exists (or let smolvm create it) and is not a file";

/** Bytes moved so far and the total (the file's size), for progress bars. */
export type TransferProgress = (done: number, total: number) => void;

export interface PutFileOptions {
  /** Permission bits in the guest; default: the local file's. */
  mode?: number;
  /** Create missing parent directories in the guest (default true). */
  mkdirParents?: boolean;
  onProgress?: TransferProgress;
  /** Gives up (and removes the partial file) after this long. */
  timeoutMs?: number;
  signal?: AbortSignal;
}

export interface GetFileOptions {
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

export async function putFile(client: Channel, local: string, guest: string, options: PutFileOptions = {}): Promise<TransferResult> {
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

export async function writeGuestFile(
  client: Channel,
  guest: string,
  data: string | Uint8Array | Readable | AsyncIterable<Uint8Array>,
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

export async function openGuestFile(client: Channel, guest: string, options: { timeoutMs?: number; signal?: AbortSignal } = {}) {
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

export async function getFile(client: Channel, guest: string, local: string, options: GetFileOptions = {}): Promise<TransferResult> {
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
