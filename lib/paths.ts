/**
 * Where smolvm keeps things on the host.
 *
 * `SMOLVM_HOME` (default `~/.smolvm`) holds the state database, one directory per sandbox, keys,
 * snapshots, warm templates and the log. Built kernels and images are large and slow to make, so they live in a cache that
 * defaults to the same home but can be pointed elsewhere with `SMOLVM_CACHE`: tests give every
 * run a fresh home while sharing one cache.
 */
import { join, resolve } from "node:path";

/** Root of smolvm's state. Read on every call so tests and the SDK can switch it at run time. */
export function smolvmHome(): string {
  const fromEnv = process.env.SMOLVM_HOME;
  return fromEnv ? resolve(fromEnv) : join(homeDir(), ".smolvm");
}

/**
 * The user's home: `$HOME`, as node:os's homedir() gives it when set, else the password
 * database's. node:os is loaded only then: its module cost every command that finds its state
 * (a plain `smolvm exec` among them) ~0.6 ms (CPU, compiled binary).
 */
function homeDir(): string {
  return process.env.HOME || process.getBuiltinModule("node:os").homedir();
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
  /** Each sandbox's directory by its name: `names/<name>` links to `../vms/<id>` (lib/state/mirror.ts). */
  namesDir: () => join(smolvmHome(), "names"),
  keysDir: () => join(smolvmHome(), "keys"),
  /** Snapshots by name: `snapshots/<name>/` (lib/snapshots/). */
  snapshotsDir: () => join(smolvmHome(), "snapshots"),
  /** Warm templates, one per image: `warm/<image>/`, in the same layout as a snapshot. */
  warmDir: () => join(smolvmHome(), "warm"),
  logFile: () => join(smolvmHome(), "smolvm.log"),
  kernelsDir: () => join(cacheRoot(), "kernels"),
  imagesDir: () => join(cacheRoot(), "images"),
};
