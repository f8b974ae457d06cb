/**
 * The I/O behind `vm.files` (files.ts): local files are streamed, never read whole, and
 * downloads land atomically (temporary file + rename) with the guest file's permission bits.
 */
import { createReadStream, createWriteStream } from "node:fs";
import { chmod, mkdir, rename, rm, stat } from "node:fs/promises";
import { basename, dirname, join } from "node:path";
import { pipeline } from "node:stream/promises";
import type { FileStream } from "../agent/types.ts";
import type { Channel } from "../channels/types.ts";
import { InvalidInputError, NotFoundError, SmolError } from "../errors.ts";
import { randomHex } from "../util/random.ts";
import type { DownloadOptions, FileData, ReadFileOptions, TransferProgress, TransferResult, UploadOptions, WriteFileOptions } from "./files.ts";
import { guestTarget, requireGuestPath } from "./guest-paths.ts";

const GUEST_WRITE_HINT = "check that the guest directory exists (or let smolvm create it) and is not a file";

function callOptions(options: { timeoutMs?: number; signal?: AbortSignal }) {
  return {
    ...(options.timeoutMs === undefined ? {} : { timeoutMs: options.timeoutMs }),
    ...(options.signal === undefined ? {} : { signal: options.signal }),
  };
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
      hint: "copy a directory with uploadDir (`smolvm file upload` does so by itself)",
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

/** Callers have checked the paths and the mode (files.ts). */
export async function upload(client: Channel, local: string, guest: string, options: UploadOptions = {}): Promise<TransferResult> {
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
  data: FileData,
  options: WriteFileOptions = {},
): Promise<TransferResult> {
  const path = requireGuestPath(guest, { file: true });
  const mode = options.mode ?? 0o644;
  try {
    const { size } = await client.writeFile(path, data, { mode, mkdirParents: options.mkdirParents ?? true, ...callOptions(options) });
    return { path, size, mode };
  } catch (error) {
    throw withAction(error, `Cannot write "${path}" in the sandbox`, GUEST_WRITE_HINT);
  }
}

export async function openGuestFile(client: Channel, guest: string, options: ReadFileOptions = {}): Promise<FileStream> {
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

export async function download(client: Channel, guest: string, local: string, options: DownloadOptions = {}): Promise<TransferResult> {
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
