/**
 * The guest's own fork/exec floor: a shell loop inside the sandbox that runs `/bin/true` (a
 * path, so even busybox ash forks and execs it rather than running a built-in applet) and an
 * empty loop of the same length, timed with the guest's /proc/uptime (10 ms ticks, hence
 * batches of hundreds). The difference per iteration is what one fork + exec + wait costs in
 * the guest, which no agent can beat.
 */

/** A POSIX sh program that prints three /proc/uptime readings: start, after the true loop, after the empty loop. */
export function forkExecScript(iterations: number): string {
  if (!Number.isInteger(iterations) || iterations <= 0) throw new RangeError(`iterations must be a positive integer, got ${iterations}`);
  const loop = (body: string) => `i=0; while [ $i -lt ${iterations} ]; do ${body}; i=$((i+1)); done`;
  return [
    "read a _ < /proc/uptime",
    loop("/bin/true"),
    "read b _ < /proc/uptime",
    loop(":"),
    "read c _ < /proc/uptime",
    'echo "$a $b $c"',
  ].join("; ");
}

/** Milliseconds per fork/exec from the script's output; undefined when it is not three numbers. */
export function parseForkExec(output: string, iterations: number): number | undefined {
  const parts = output.trim().split(/\s+/).map(Number);
  if (parts.length !== 3 || parts.some((x) => !Number.isFinite(x))) return undefined;
  const [a, b, c] = parts as [number, number, number];
  const withExec = b - a;
  const empty = c - b;
  return Math.max(0, ((withExec - empty) * 1000) / iterations);
}
