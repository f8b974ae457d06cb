/**
 * Where smolvm keeps things on the host.
 *
 * `SMOLVM_HOME` (default `~/.smolvm`) holds the state database, one directory per sandbox, keys,
 * snapshots, warm templates and the log. Built kernels and images are large and slow to make, so they live in a cache that
 * defaults to the same home but can be pointed elsewhere with `SMOLVM_CACHE`: tests give every
 * run a fresh home while sharing one cache.
 */
import { homedir } from "node:os";
import { join, resolve } from "node:path";

/** Root of smolvm's state. Read on every call so tests and the SDK can switch it at run time. */
export function smolvmHome(): string {
  const fromEnv = process.env.SMOLVM_HOME;
  return fromEnv ? resolve(fromEnv) : join(homedir(), ".smolvm");
}

/** Root of the kernel and image caches. */
export function cacheRoot(): string {
  const fromEnv = process.env.SMOLVM_CACHE;
  return fromEnv ? resolve(fromEnv) : smolvmHome();
}

export const paths = {
  stateDb: () => join(smolvmHome(), "state.db"),
  sandboxesDir: () => join(smolvmHome(), "vms"),
  sandboxDir: (id: string) => join(smolvmHome(), "vms", id),
  keysDir: () => join(smolvmHome(), "keys"),
  /** Snapshots by name: `snapshots/<name>/` (lib/snapshots/). */
  snapshotsDir: () => join(smolvmHome(), "snapshots"),
  /** Warm templates, one per image: `warm/<image>/`, in the same layout as a snapshot. */
  warmDir: () => join(smolvmHome(), "warm"),
  logFile: () => join(smolvmHome(), "smolvm.log"),
  kernelsDir: () => join(cacheRoot(), "kernels"),
  imagesDir: () => join(cacheRoot(), "images"),
};
