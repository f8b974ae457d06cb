/**
 * Building into a content-addressed cache safely: one builder per key at a time (a lock file
 * holding the builder's pid), work in a temp directory beside the final one, publish with one
 * atomic rename. Used by both the kernel and the image caches.
 */
import { mkdir, mkdtemp, open, readdir, readFile, rename, rm, stat } from "node:fs/promises";
import { rmSync } from "node:fs";
import { dirname, join } from "node:path";
import { TimeoutError } from "../errors.ts";
import { onInterrupt } from "../host/interrupt.ts";

const POLL_MS = 250;

export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === "EPERM";
  }
}

/**
 * Runs `fn` while holding `lockPath`. A lock left by a dead process is taken over; a live holder
 * is waited for (`onWait` is called once, so the caller can say why it is idle).
 */
export async function withLock<T>(
  lockPath: string,
  fn: () => Promise<T>,
  options: { onWait?: (holderPid: number) => void; timeoutMs?: number } = {},
): Promise<T> {
  // Callers in this process queue here first; the file lock orders processes.
  const previous = inProcess.get(lockPath);
  let release!: () => void;
  const mine = new Promise<void>((r) => (release = r));
  const tail = (previous ?? Promise.resolve()).then(() => mine);
  inProcess.set(lockPath, tail);
  if (previous) {
    options.onWait?.(process.pid);
    await previous;
  }
  try {
    return await withFileLock(lockPath, fn, options);
  } finally {
    release();
    if (inProcess.get(lockPath) === tail) inProcess.delete(lockPath);
  }
}

const inProcess = new Map<string, Promise<void>>();

async function withFileLock<T>(
  lockPath: string,
  fn: () => Promise<T>,
  options: { onWait?: (holderPid: number) => void; timeoutMs?: number },
): Promise<T> {
  await mkdir(dirname(lockPath), { recursive: true });
  const deadline = Date.now() + (options.timeoutMs ?? 2 * 60 * 60 * 1000);
  let told = false;
  for (;;) {
    try {
      const handle = await open(lockPath, "wx");
      await handle.writeFile(String(process.pid));
      await handle.close();
      break;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== "EEXIST") throw error;
    }
    const holder = Number.parseInt(await readFile(lockPath, "utf8").catch(() => ""), 10);
    if (!Number.isFinite(holder) || holder === process.pid || !isAlive(holder)) {
      // Empty (a holder between open and write) gets one grace poll before being taken over.
      if (Number.isFinite(holder) || (await ageMs(lockPath)) > 5_000) {
        await rm(lockPath, { force: true });
        continue;
      }
    } else if (!told) {
      told = true;
      options.onWait?.(holder);
    }
    if (Date.now() > deadline) {
      throw new TimeoutError(`Cannot take the build lock "${lockPath}": process ${holder} holds it`, {
        hint: "wait for the other build to finish, or remove the lock file if that process is not smolvm",
      });
    }
    await new Promise((r) => setTimeout(r, POLL_MS));
  }
  const undoInterrupt = onInterrupt(() => rmSync(lockPath, { force: true }));
  try {
    return await fn();
  } finally {
    undoInterrupt();
    await rm(lockPath, { force: true });
  }
}

async function ageMs(path: string): Promise<number> {
  try {
    return Date.now() - (await stat(path)).mtimeMs;
  } catch {
    return Infinity;
  }
}

/**
 * Runs `build` in a fresh temp directory inside `parent` (the same filesystem as `finalDir`) and
 * publishes what it leaves there as `finalDir` with one rename. On failure, or if the process is
 * interrupted, the temp directory is removed. Call it while holding the key's lock: temp dirs of
 * the same label left by a killed build are removed first.
 */
export async function buildInto(
  parent: string,
  label: string,
  finalDir: string,
  options: { replace?: boolean },
  build: (tempDir: string) => Promise<void>,
): Promise<void> {
  await mkdir(parent, { recursive: true });
  await removeLeftovers(parent, `.tmp-${label}-`);
  const tempDir = await mkdtemp(join(parent, `.tmp-${label}-`));
  const undoInterrupt = onInterrupt(() => rmSync(tempDir, { recursive: true, force: true }));
  try {
    await build(tempDir);
    if (options.replace === true) await rm(finalDir, { recursive: true, force: true });
    await publishDir(tempDir, finalDir);
  } catch (error) {
    await rm(tempDir, { recursive: true, force: true });
    throw error;
  } finally {
    undoInterrupt();
  }
}

/** Removes entries of `dir` whose name starts with `prefix` (leftovers of a killed build). */
export async function removeLeftovers(
  dir: string,
  prefix: string,
  also: (name: string) => boolean = () => true,
): Promise<void> {
  for (const name of await readdir(dir).catch(() => [] as string[])) {
    if (name.startsWith(prefix) && also(name)) await rm(join(dir, name), { recursive: true, force: true });
  }
}

/**
 * Moves a finished build directory to its final name. If another builder got there first its
 * result is kept and ours discarded (both came from the same inputs).
 */
export async function publishDir(tempDir: string, finalDir: string): Promise<void> {
  try {
    await rename(tempDir, finalDir);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code !== "ENOTEMPTY" && code !== "EEXIST") throw error;
    await rm(tempDir, { recursive: true, force: true });
  }
}

export async function exists(path: string): Promise<boolean> {
  try {
    await stat(path);
    return true;
  } catch {
    return false;
  }
}
