/**
 * One guest file over SFTP with the agent's semantics (PROTOCOL.md `writeFile`, `readFile`):
 * writes land atomically (a temporary file beside the target, then a POSIX rename) with the
 * exact permission bits asked for; reads report size and permission bits, then stream.
 */
import { randomBytes } from "node:crypto";
import { posix } from "node:path";
import { Readable } from "node:stream";
import type { SFTPWrapper, Stats } from "ssh2";
import { InvalidInputError, NotFoundError, SmolError } from "../errors.ts";
import type { FileStream } from "../agent/types.ts";

const READ_CHUNK = 64 * 1024;
const WRITE_CHUNK = 256 * 1024;
/** SFTP status codes (draft-ietf-secsh-filexfer-02). */
const NO_SUCH_FILE = 2;
const PERMISSION_DENIED = 3;

type Data = string | Uint8Array | Readable | AsyncIterable<Uint8Array>;

export function sftpError(error: unknown, action: string): SmolError {
  if (error instanceof SmolError) return error;
  const code = (error as { code?: unknown }).code;
  const message = error instanceof Error ? error.message : String(error);
  if (code === NO_SUCH_FILE) return new NotFoundError(`${action}: no such file or directory`, { cause: error });
  if (code === PERMISSION_DENIED) return new SmolError("IO_ERROR", `${action}: permission denied`, { cause: error });
  return new SmolError("IO_ERROR", `${action}: ${message}`, { cause: error });
}

function call<T>(body: (cb: (error: Error | null | undefined, value?: T) => void) => void): Promise<T> {
  return new Promise((resolve, reject) => body((error, value) => (error ? reject(error) : resolve(value as T))));
}

const isDir = (stats: Stats) => (stats.mode & 0o170000) === 0o040000;
const isRegular = (stats: Stats) => (stats.mode & 0o170000) === 0o100000;

async function statOrUndefined(sftp: SFTPWrapper, path: string): Promise<Stats | undefined> {
  return call<Stats>((cb) => sftp.stat(path, cb)).catch(() => undefined);
}

/** `mkdir -p` with mode 0755 for what is created. */
async function mkdirParents(sftp: SFTPWrapper, dir: string): Promise<void> {
  const missing: string[] = [];
  for (let at = dir; at !== "/" && at !== "."; at = posix.dirname(at)) {
    const stats = await statOrUndefined(sftp, at);
    if (stats !== undefined) {
      if (!isDir(stats)) throw new InvalidInputError(`Cannot write into "${at}": it is not a directory`);
      break;
    }
    missing.unshift(at);
  }
  for (const path of missing) {
    await call<void>((cb) => sftp.mkdir(path, { mode: 0o755 }, cb)).catch(async (error) => {
      if (!(await statOrUndefined(sftp, path))) throw error; // lost a race with another creator: fine
    });
  }
}

async function* chunksOf(data: Data): AsyncIterable<Buffer> {
  if (typeof data === "string" || data instanceof Uint8Array) {
    const all = typeof data === "string" ? Buffer.from(data) : Buffer.from(data.buffer, data.byteOffset, data.byteLength);
    for (let at = 0; at < all.length; at += WRITE_CHUNK) yield all.subarray(at, at + WRITE_CHUNK);
    return;
  }
  for await (const chunk of data as AsyncIterable<Uint8Array | string>) {
    yield typeof chunk === "string" ? Buffer.from(chunk) : Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength);
  }
}

export async function sftpWriteFile(
  sftp: SFTPWrapper,
  path: string,
  data: Data,
  options: { mode?: number; mkdirParents?: boolean; signal?: AbortSignal },
): Promise<{ size: number }> {
  const action = `Cannot write "${path}"`;
  const dir = posix.dirname(path);
  const mode = options.mode ?? 0o644;
  const tmp = posix.join(dir, `.${posix.basename(path)}.smolvm-${randomBytes(6).toString("hex")}`);
  let handle: Buffer | undefined;
  let size = 0;
  try {
    if (options.mkdirParents) await mkdirParents(sftp, dir);
    handle = await call<Buffer>((cb) => sftp.open(tmp, "wx", { mode: 0o600 }, cb));
    for await (const chunk of chunksOf(data)) {
      options.signal?.throwIfAborted();
      const at = size;
      await call<void>((cb) => sftp.write(handle!, chunk, 0, chunk.length, at, cb));
      size += chunk.length;
    }
    // fchmod after the writes: exact bits, whatever the server's umask.
    await call<void>((cb) => sftp.fchmod(handle!, mode, cb));
    await call<void>((cb) => sftp.close(handle!, cb));
    handle = undefined;
    try {
      await call<void>((cb) => sftp.ext_openssh_rename(tmp, path, cb));
    } catch (error) {
      const target = await statOrUndefined(sftp, path);
      if (target !== undefined && isDir(target)) throw new InvalidInputError(`${action}: it is a directory`, { cause: error });
      throw error;
    }
    return { size };
  } catch (error) {
    if (handle !== undefined) await call<void>((cb) => sftp.close(handle!, cb)).catch(() => {});
    await call<void>((cb) => sftp.unlink(tmp, cb)).catch(() => {});
    if ((error as { code?: unknown }).code === NO_SUCH_FILE) {
      throw new NotFoundError(`${action}: the directory "${dir}" does not exist`, { cause: error, hint: "pass mkdirParents: true to create it" });
    }
    throw sftpError(error, action);
  }
}

export async function sftpReadFile(sftp: SFTPWrapper, path: string): Promise<FileStream> {
  const action = `Cannot read "${path}"`;
  let handle: Buffer;
  try {
    const stats = await call<Stats>((cb) => sftp.stat(path, cb));
    if (isDir(stats)) throw new InvalidInputError(`${action}: it is a directory`, { details: { agentCode: "IS_DIRECTORY" } });
    if (!isRegular(stats)) throw new InvalidInputError(`${action}: it is not a regular file`, { hint: "only regular files can be copied" });
    handle = await call<Buffer>((cb) => sftp.open(path, "r", cb));
  } catch (error) {
    throw sftpError(error, action);
  }
  const stats = await call<Stats>((cb) => sftp.fstat(handle, cb)).catch(async (error: unknown) => {
    await call<void>((cb) => sftp.close(handle, cb)).catch(() => {});
    throw sftpError(error, action);
  });
  let position = 0;
  let closed = false;
  const release = (cb: () => void) => {
    if (closed) return cb();
    closed = true;
    sftp.close(handle, () => cb());
  };
  const stream = new Readable({
    highWaterMark: READ_CHUNK,
    read() {
      const buffer = Buffer.allocUnsafe(READ_CHUNK);
      sftp.read(handle, buffer, 0, READ_CHUNK, position, (error, bytesRead) => {
        if (error) {
          this.destroy(sftpError(error, action));
          return;
        }
        if (bytesRead === 0) {
          release(() => this.push(null));
          return;
        }
        position += bytesRead;
        this.push(buffer.subarray(0, bytesRead));
      });
    },
    destroy(error, cb) {
      release(() => cb(error));
    },
  });
  return { size: stats.size, mode: stats.mode & 0o7777, stream };
}
