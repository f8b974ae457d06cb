/**
 * Undoing work in progress when the process is interrupted (SIGINT, SIGTERM, SIGHUP). A signal
 * ends a Bun or Node process without running `finally` blocks, so an interrupted image or kernel
 * build would leave mmdebstrap or make running as orphans, and its temp dir and lock behind.
 * While anything is registered here, those signals run the cleanups (newest first) and then end
 * the process with the shell's status for the signal (128 + its number). With nothing
 * registered, signals keep their default behaviour.
 */
import { constants } from "node:os";

const SIGNALS = ["SIGINT", "SIGTERM", "SIGHUP"] as const;
const cleanups: (() => void)[] = [];

function onSignal(signal: NodeJS.Signals): void {
  for (const cleanup of cleanups.splice(0).reverse()) {
    try {
      cleanup();
    } catch {
      // Best effort: the process is ending either way, and the next build removes leftovers.
    }
  }
  process.exit(128 + (constants.signals[signal] ?? 0));
}

/** Registers `cleanup` (synchronous) until the returned function is called. */
export function onInterrupt(cleanup: () => void): () => void {
  if (cleanups.length === 0) for (const signal of SIGNALS) process.on(signal, onSignal);
  cleanups.push(cleanup);
  return () => {
    const at = cleanups.indexOf(cleanup);
    if (at >= 0) cleanups.splice(at, 1);
    if (cleanups.length === 0) for (const signal of SIGNALS) process.off(signal, onSignal);
  };
}
