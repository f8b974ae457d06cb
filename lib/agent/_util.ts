/** Helpers shared by the client's operations. */
import { InvalidInputError, TimeoutError } from "../errors.ts";
import { requestProblem, type AgentRequest } from "./messages.ts";
import type { CallOptions } from "./types.ts";

/** High-water mark of the Readables and Writables the client hands out. */
export const STREAM_HWM = 64 * 1024;

/**
 * How long past a command's own timeout the host still waits for the guest to report it: the
 * agent kills the process group at the timeout and waits up to 1 s for its pipes, and a loaded
 * guest answers late. After that the host kills the group through the agent itself and stops
 * waiting, so a hung or hostile agent cannot hold a caller past its deadline.
 */
export const HOST_DEADLINE_GRACE_MS = 3_000;

/** Arms a timeout and an abort listener; returns the disarm function. */
export function guard(options: CallOptions, what: string, onFire: (error: unknown) => void): () => void {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const onAbort = () => onFire(options.signal!.reason);
  if (options.timeoutMs !== undefined) {
    timer = setTimeout(
      () => onFire(new TimeoutError(`${what}: no answer from the guest agent within ${options.timeoutMs} ms`)),
      options.timeoutMs,
    );
  }
  options.signal?.addEventListener("abort", onAbort, { once: true });
  return () => {
    if (timer) clearTimeout(timer);
    options.signal?.removeEventListener("abort", onAbort);
  };
}

export function validate(request: AgentRequest): string {
  const problem = requestProblem(request);
  if (problem !== undefined) throw new InvalidInputError(problem);
  return JSON.stringify(request);
}
