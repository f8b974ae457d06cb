/**
 * For the e2e scripts that fill a disk on purpose inside `unshare -m` (a mount namespace of their
 * own, so the mount goes with it): a small tmpfs over one directory of the home.
 */
import { spawnSync } from "node:child_process";

/**
 * Mounts a tmpfs of `size` (mount's notation, "64m") on `dir`. Without it nothing the script
 * goes on to measure means anything, so a failed mount ends the script with the one JSON line
 * its test reads, the reason as `error`: the test then fails saying why, not on a crash.
 */
export function mountTmpfsOrReport(dir: string, size: string): void {
  const mounted = spawnSync("mount", ["-t", "tmpfs", "-o", `size=${size}`, "tmpfs", dir], { encoding: "utf8" });
  if (mounted.status === 0) return;
  console.log(JSON.stringify({ error: `mount failed: ${mounted.stderr}` }));
  process.exit(0);
}

/** Lazily: a process the script started may still hold a file on it. */
export function unmountTmpfs(dir: string): void {
  spawnSync("umount", ["-l", dir]);
}
