/**
 * Directories in and out of a sandbox, streamed as tar through one exec of the guest's own
 * `tar` (GNU tar on Debian images, BusyBox tar on `base`), with stdin or stdout as the stream.
 * That works the same over both channels (agent and SSH) and measured within a few percent of
 * `tar` piped through the raw channel (docs/benchmarks.md, `file.upload.dir`), so the agent
 * has no tar code of its own.
 *
 * The host side packs and unpacks itself (lib/tar/): what it sends is listed by `lstat`, so
 * links are never followed out of the tree; what it receives is checked entry by entry before
 * it touches the disk (extract.ts), because the guest is not trusted.
 */
import { lstat, mkdir, rename, rm } from "node:fs/promises";
import { basename, dirname, join, resolve } from "node:path";
import { Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import type { Channel } from "../channels/types.ts";
import { CommandFailedError, InvalidInputError, NotFoundError, SmolError, TimeoutError } from "../errors.ts";
import { randomHex } from "../util/random.ts";
import { sleep } from "../util/poll.ts";
import { extractTar, type ExtractLimits } from "../tar/extract.ts";
import { packTree } from "../tar/pack.ts";
import { DEFAULT_IGNORES, listTree, listWorkspace, type TreeListing } from "../tar/tree.ts";
import { requireGuestPath } from "./guest-paths.ts";
import type { TransferProgress } from "./files.ts";

export interface UploadDirOptions {
  /**
   * What to send: `all` (every entry, the default) or `workspace` (Git's view in a Git work
   * tree, plus `.git`; otherwise everything but a default ignore list such as node_modules).
   */
  select?: "all" | "workspace";
  /** A listing made beforehand (e.g. to warn about its size); `select` is then ignored. */
  listing?: TreeListing;
  onProgress?: TransferProgress;
  timeoutMs?: number;
  signal?: AbortSignal;
}

export interface DownloadDirOptions extends ExtractLimits {
  /** `all` (the default) or `workspace`: in a Git work tree, what Git shows (no `.git`, no ignored files). */
  select?: "all" | "workspace";
  /** Called with the bytes written so far (the total is not known in advance: -1). */
  onProgress?: TransferProgress;
  timeoutMs?: number;
  signal?: AbortSignal;
}

/** What a directory transfer did. */
export interface DirTransferResult {
  /** Where the tree landed (a guest path for uploads, a host path for downloads). */
  path: string;
  files: number;
  directories: number;
  symlinks: number;
  bytes: number;
  /** Entries left out, with why (special files; on download, links pointing outside). */
  skipped: { path: string; reason: string }[];
}

const STDERR_KEEP = 4096;
/** How long tar in the guest may take to exit once its archive has arrived. */
const ENDING_GRACE_MS = 15_000;

/** The last few KiB of a stream, for an error message. */
function keepTail(stream: Readable): () => string {
  let tail = "";
  stream.on("data", (chunk: Buffer) => {
    tail = (tail + chunk.toString("utf8")).slice(-STDERR_KEEP);
  });
  return () => tail.trim();
}

// $1 the guest directory. Modes and links as sent; owners are root's (the headers say so).
const UNPACK = 'mkdir -p -- "$1" && cd -- "$1" && exec tar -x -f -';

// $1 the guest directory, $2 all|workspace, then the default ignores.
const PACK = `cd -- "$1" 2>/dev/null || { echo "no such directory: $1" >&2; exit 3; }
mode=$2; shift 2
if [ "$mode" = workspace ] && command -v git >/dev/null 2>&1 && git -c safe.directory='*' rev-parse --is-inside-work-tree >/dev/null 2>&1; then
  git -c safe.directory='*' -c core.quotepath=off ls-files -z --cached --others --exclude-standard | tar -c -f - --null -T - --ignore-failed-read
  exit $?
fi
if [ "$mode" = workspace ]; then
  for name in "$@"; do set -- "$@" "--exclude=$name"; shift; done
  exec tar -c -f - "$@" .
fi
exec tar -c -f - .`;

async function localDirectory(local: string): Promise<void> {
  const info = await lstat(local).catch((cause: NodeJS.ErrnoException) => {
    throw new NotFoundError(`Cannot upload "${local}": no such directory on this host`, {
      hint: "check the local path (it is relative to the current directory)",
      cause,
    });
  });
  if (!info.isDirectory()) {
    throw new InvalidInputError(`Cannot upload "${local}": it is not a directory`, { hint: "upload a file with vm.files.upload / `smolvm file upload`" });
  }
}

/** Lists what `uploadDir` would send, for a size check before the transfer. */
export async function listUpload(local: string, select: "all" | "workspace" = "all"): Promise<TreeListing> {
  await localDirectory(local);
  try {
    return select === "workspace" ? await listWorkspace(local) : await listTree(local);
  } catch (cause) {
    const code = (cause as NodeJS.ErrnoException).code;
    throw new SmolError("IO_ERROR", `Cannot read the directory "${local}": ${(cause as Error).message}`, {
      cause,
      hint: code === "EACCES" ? "some of it is not readable by this user" : "check the directory",
    });
  }
}

/** Copies the contents of local directory `local` into guest directory `guest` (created; merged when it exists). */
export async function uploadDir(client: Channel, local: string, guest: string, options: UploadDirOptions = {}): Promise<DirTransferResult> {
  const target = requireGuestPath(guest).replace(/(.)\/+$/, "$1");
  const listing = options.listing ?? (await listUpload(local, options.select));
  const action = `Cannot upload "${local}" to "${target}"`;
  const proc = await client.exec({
    argv: ["sh", "-c", UNPACK, "sh", target],
    stdin: true,
    ...(options.timeoutMs === undefined ? {} : { timeoutMs: options.timeoutMs }),
    ...(options.signal === undefined ? {} : { signal: options.signal }),
  });
  const stderr = keepTail(proc.stderr);
  proc.stdout.resume();
  try {
    await pipeline(Readable.from(packTree(resolve(local), listing.entries, options.onProgress)), proc.stdin!);
  } catch (error) {
    proc.kill();
    await proc.wait().catch(() => {});
    throw error instanceof SmolError ? error : new SmolError("IO_ERROR", `${action}: ${(error as Error).message}`, { cause: error });
  }
  const result = await proc.wait();
  if (result.timedOut) throw new TimeoutError(`${action}: timed out`, { hint: "raise the timeout" });
  if (result.exitCode !== 0) {
    throw new CommandFailedError(`${action}: tar in the sandbox failed: ${stderr() || `exit ${result.exitCode ?? result.signal}`}`, {
      hint: "check that the guest path is a directory (or can be created) and that the disk has room",
    });
  }
  const count = (type: string) => listing.entries.filter((e) => e.type === type).length;
  return {
    path: target,
    files: count("file"),
    directories: count("directory"),
    symlinks: count("symlink"),
    bytes: listing.bytes,
    skipped: listing.skipped.map((path) => ({ path, reason: "not a file, directory or symlink" })),
  };
}

/**
 * Copies the contents of guest directory `guest` into local directory `local`. A new `local`
 * appears whole or not at all (unpacked beside it, then renamed); an existing one is merged
 * into, file by file (each file atomic; nothing is deleted).
 */
export async function downloadDir(client: Channel, guest: string, local: string, options: DownloadDirOptions = {}): Promise<DirTransferResult> {
  const source = requireGuestPath(guest).replace(/(.)\/+$/, "$1");
  const target = resolve(local);
  const action = `Cannot download "${source}" to "${local}"`;
  const existing = await lstat(target).catch(() => undefined);
  if (existing !== undefined && !existing.isDirectory()) {
    throw new InvalidInputError(`${action}: it exists and is not a directory`, { hint: "name a directory, or a path that does not exist yet" });
  }
  const into = existing === undefined ? join(dirname(target), `.${basename(target)}.smolvm-${randomHex(4)}`) : target;
  await mkdir(into, { recursive: true, mode: 0o700 });
  const proc = await client.exec({
    argv: ["sh", "-c", PACK, "sh", source, options.select ?? "all", ...DEFAULT_IGNORES],
    ...(options.timeoutMs === undefined ? {} : { timeoutMs: options.timeoutMs }),
    ...(options.signal === undefined ? {} : { signal: options.signal }),
  });
  const stderr = keepTail(proc.stderr);
  let written = 0;
  // Not destroyed when the unpacking stops early: the rest is drained (or the command killed),
  // so the exec still ends and reports its status on either channel.
  const counted = async function* (stream: Readable): AsyncGenerator<Buffer> {
    for await (const chunk of stream.iterator({ destroyOnReturn: false })) {
      written += (chunk as Buffer).length;
      options.onProgress?.(written, -1);
      yield chunk as Buffer;
    }
  };
  try {
    const limits = {
      ...(options.maxBytes === undefined ? {} : { maxBytes: options.maxBytes }),
      ...(options.maxEntries === undefined ? {} : { maxEntries: options.maxEntries }),
      rootMode: into !== target,
    };
    const extracted = await extractTar(counted(proc.stdout), into, limits);
    // The archive is complete; a sender that keeps going past its end is cut off.
    const result = await Promise.race([proc.wait(), sleep(ENDING_GRACE_MS).then(() => undefined)]);
    if (result === undefined) throw new InvalidInputError(`${action}: the sandbox kept sending after the end of the archive`);
    if (result.timedOut) throw new TimeoutError(`${action}: timed out`, { hint: "raise the timeout" });
    if (result.exitCode === 3) throw new NotFoundError(`${action}: no such directory in the sandbox`, { hint: "check the path, e.g. with `ls` through `smolvm exec`" });
    if (result.exitCode !== 0) throw new CommandFailedError(`${action}: tar in the sandbox failed: ${stderr() || `exit ${result.exitCode ?? result.signal}`}`);
    if (into !== target) await rename(into, target);
    return { path: target, ...extracted };
  } catch (error) {
    proc.kill();
    proc.stdout.resume();
    await Promise.race([proc.wait().catch(() => {}), sleep(5000)]);
    if (into !== target) await rm(into, { recursive: true, force: true });
    if (error instanceof SmolError && !error.message.startsWith("Cannot download")) {
      error.message = `${action}: ${error.message.replace(/^Cannot /, "cannot ")}`;
    }
    throw error;
  }
}
