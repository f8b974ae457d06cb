/**
 * Waiting for a condition nothing announces: a file another process writes, a pid that is not
 * our child ending, a socket another process creates. Everything that can announce itself (a
 * supervisor's readiness, a stop, a process we spawned exiting) is awaited on its own signal
 * instead; this is for what truly has to be looked at again and again.
 */
import { TimeoutError, type SmolError } from "../errors.ts";

/** Resolves after `ms`; rejects with the signal's reason if it is aborted first. */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  if (signal?.aborted) return Promise.reject(signal.reason);
  return new Promise((resolve, reject) => {
    const onAbort = () => {
      clearTimeout(timer);
      reject(signal!.reason);
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener("abort", onAbort);
      resolve();
    }, Math.max(0, ms));
    signal?.addEventListener("abort", onAbort, { once: true });
  });
}

export interface PollOptions {
  /** Gives up after this long. */
  timeoutMs: number;
  /** Time between looks (default 10 ms). */
  intervalMs?: number;
  signal?: AbortSignal;
  /** What is awaited, for the timeout error: "the supervisor's socket". */
  what: string;
  /** The error to throw at the deadline instead of a plain TimeoutError. */
  onTimeout?: () => SmolError;
}

/**
 * Calls `check` until it returns something other than `undefined`, `null` or `false`, and
 * resolves with that. `check` may throw to give up early (the error passes through).
 */
export async function pollUntil<T>(check: () => T | undefined | null | false | Promise<T | undefined | null | false>, options: PollOptions): Promise<T> {
  const deadline = Date.now() + options.timeoutMs;
  for (;;) {
    options.signal?.throwIfAborted();
    const value = await check();
    if (value !== undefined && value !== null && value !== false) return value;
    if (Date.now() >= deadline) {
      throw options.onTimeout?.() ?? new TimeoutError(`Gave up waiting for ${options.what} after ${options.timeoutMs} ms`);
    }
    await sleep(Math.min(options.intervalMs ?? 10, Math.max(1, deadline - Date.now())), options.signal);
  }
}

/**
 * `promise`'s value, or `undefined` once `ms` have passed first. The timer is cleared either way,
 * so a caller that got its answer early does not keep the process alive waiting for it.
 */
export async function within<T>(promise: Promise<T>, ms: number): Promise<T | undefined> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<undefined>((resolve) => {
    timer = setTimeout(() => resolve(undefined), ms);
  });
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}
