/**
 * Writing a command's text and asking whether stdout/stderr is a terminal, without touching
 * `process.stdout` or `process.stderr`: in Bun the first touch of either builds a Node stream
 * (and loads tty, net and stream), ~20 ms, which is as much as the whole runtime start. Commands
 * that stream (exec, logs, shell) still use the streams; a command that prints a result and exits
 * does not need them.
 */

interface TtyBinding {
  isTTY(fd: number): boolean;
}

/** Bun's native isatty, when there is one; Deno and Node fall back to the streams. */
const ttyBinding: TtyBinding | undefined = (() => {
  if (process.versions.bun === undefined) return undefined;
  try {
    const binding = (process as unknown as { binding(name: string): Partial<TtyBinding> }).binding("tty_wrap");
    return typeof binding.isTTY === "function" ? (binding as TtyBinding) : undefined;
  } catch {
    return undefined;
  }
})();

export function isTerminal(fd: 0 | 1 | 2): boolean {
  if (ttyBinding !== undefined) return ttyBinding.isTTY(fd);
  return Boolean([process.stdin, process.stdout, process.stderr][fd]!.isTTY);
}

/**
 * Prints text as given plus a final newline if it lacks one. Console writes are synchronous and
 * block on a full pipe, so nothing is lost when the process exits right after.
 */
export function printOut(text: string): void {
  console.log(text.endsWith("\n") ? text.slice(0, -1) : text);
}

export function printErr(text: string): void {
  console.error(text.endsWith("\n") ? text.slice(0, -1) : text);
}
