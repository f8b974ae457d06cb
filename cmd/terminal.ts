/**
 * The host terminal wired to a PTY session in a sandbox: raw keys in, the screen out, window
 * size changes passed on, and a detach key (Ctrl-]) that ends only this side of the session.
 */
import type { ExecHandle } from "../lib/index.ts";

/** Ctrl-], as telnet and `docker attach` taught a generation of fingers. */
export const DETACH_KEY = 0x1d;
export const DETACH_KEY_NAME = "Ctrl-]";

export interface TerminalOutcome {
  detached: boolean;
  /** The session's exit status (128+N for a signal) when it ended by itself. */
  status?: number;
}

/**
 * The exit status a shell would report: the code, or 128 + the signal number. node:os (the
 * signal numbers) loads only for a signal: a plain `exec` that exits does not pay its ~0.3 ms.
 */
export function exitStatus(result: { exitCode: number | null; signal: string | null }): number {
  if (result.exitCode !== null) return result.exitCode;
  const signals = process.getBuiltinModule("node:os").constants.signals as Record<string, number>;
  const number = signals[`SIG${result.signal ?? "KILL"}`] ?? 9;
  return 128 + number;
}

/** Runs until the session ends or the user presses the detach key. */
export async function attachTerminal(handle: ExecHandle): Promise<TerminalOutcome> {
  const stdin = process.stdin;
  const size = () => ({ rows: process.stdout.rows || 24, cols: process.stdout.columns || 80 });
  const onResize = () => handle.resize(size().rows, size().cols);
  let detach: (() => void) | undefined;
  const detached = new Promise<TerminalOutcome>((resolve) => {
    detach = () => resolve({ detached: true });
  });
  const onKeys = (chunk: Buffer) => {
    const at = chunk.indexOf(DETACH_KEY);
    if (at < 0) {
      handle.stdin?.write(chunk);
      return;
    }
    if (at > 0) handle.stdin?.write(chunk.subarray(0, at));
    detach?.();
  };
  process.stdout.on("resize", onResize);
  if (stdin.isTTY) stdin.setRawMode(true);
  stdin.on("data", onKeys);
  handle.stdout.pipe(process.stdout, { end: false });
  // The first size may have changed between the exec request and now.
  onResize();
  try {
    return await Promise.race([detached, handle.wait().then((r) => ({ detached: false, status: exitStatus(r) }))]);
  } finally {
    process.stdout.off("resize", onResize);
    stdin.off("data", onKeys);
    handle.stdout.unpipe(process.stdout);
    if (stdin.isTTY) stdin.setRawMode(false);
    stdin.pause();
    stdin.destroy();
  }
}
