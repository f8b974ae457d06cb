/**
 * Where snapshots live and how they appear and disappear: `snapshots/<name>/` for snapshots,
 * `warm/<image>/` for warm templates (same layout, lib/snapshots/manifest.ts).
 *
 * A snapshot is written into a staging directory beside its final place
 * (`.partial-<name>-<pid>-<random>`) and renamed into place only once every file and the manifest
 * are on disk, so a save that fails (a full disk), or is killed, is never listed; `cleanup`
 * removes the staging directories whose process is gone. Removal renames the directory out of
 * sight first, then deletes it. Sandboxes made from a snapshot hold their own copy of its disk
 * layer, so removing it never breaks them.
 */
import { existsSync, mkdirSync, readdirSync, rmSync, statSync } from "node:fs";
import { rename } from "node:fs/promises";
import { join } from "node:path";
import { AlreadyExistsError, InvalidInputError, NotFoundError } from "../errors.ts";
import { pidAlive } from "../host/pids.ts";
import { logEvent } from "../log.ts";
import { paths } from "../paths.ts";
import { randomHex } from "../util/random.ts";
import { readManifest, SNAPSHOT_NAME_PATTERN, storedBytes, type SnapshotManifest } from "./manifest.ts";

/** A snapshot as `snapshot list` shows it. */
export interface SnapshotInfo {
  name: string;
  kind: "snapshot" | "template";
  createdAt: number;
  /** The sandbox it was taken of. */
  source: { id: string; name: string };
  image: string;
  vcpus: number;
  memoryMiB: number;
  backend: string;
  /** Bytes stored on disk, all files (compressed). */
  bytes: number;
  /** Its files, each with role, stored size and SHA-256. */
  files: SnapshotManifest["files"];
  dir: string;
}

/** A snapshot found on disk. */
export interface StoredSnapshot {
  dir: string;
  manifest: SnapshotManifest;
}

export function parseSnapshotName(name: unknown): string {
  if (typeof name !== "string" || !SNAPSHOT_NAME_PATTERN.test(name)) {
    throw new InvalidInputError(`Invalid snapshot name ${JSON.stringify(name)}: use 1-63 lowercase letters, digits and dashes, not starting or ending with a dash`, {
      hint: 'e.g. "dev-clean" or "before-upgrade"',
    });
  }
  return name;
}

export function summarizeSnapshot(stored: StoredSnapshot): SnapshotInfo {
  const m = stored.manifest;
  return {
    name: m.name,
    kind: m.kind,
    createdAt: m.createdAt,
    source: m.source,
    image: m.image.name,
    vcpus: m.config.vcpus,
    memoryMiB: m.config.memoryMiB,
    backend: m.backend,
    bytes: storedBytes(m),
    files: m.files,
    dir: stored.dir,
  };
}

function entries(root: string): string[] {
  try {
    return readdirSync(root).filter((name) => !name.startsWith("."));
  } catch {
    return [];
  }
}

/** Every snapshot under `root` (default the snapshots directory), oldest first; unreadable ones are logged and left out. */
export function listStored(root: string = paths.snapshotsDir()): StoredSnapshot[] {
  const found: StoredSnapshot[] = [];
  for (const name of entries(root)) {
    const dir = join(root, name);
    try {
      found.push({ dir, manifest: readManifest(dir) });
    } catch (error) {
      logEvent("warn", `snapshot "${name}" is unreadable: ${(error as Error).message}`, { dir });
    }
  }
  return found.sort((a, b) => a.manifest.createdAt - b.manifest.createdAt || a.manifest.name.localeCompare(b.manifest.name));
}

/** The snapshot named `name`; NotFoundError when there is none. */
export function findSnapshot(name: string): StoredSnapshot {
  const dir = join(paths.snapshotsDir(), parseSnapshotName(name));
  if (!existsSync(dir)) {
    throw new NotFoundError(`Cannot find snapshot "${name}"`, { hint: "`smolvm snapshot list` shows the snapshots that exist" });
  }
  return { dir, manifest: readManifest(dir) };
}

/** A fresh staging directory under `root` for a snapshot to be named `name`. */
export function makeStaging(root: string, name: string): string {
  mkdirSync(root, { recursive: true, mode: 0o700 });
  const dir = join(root, `.partial-${name}-${process.pid}-${randomHex(3)}`);
  mkdirSync(dir, { mode: 0o700 });
  return dir;
}

/**
 * Moves a finished staging directory to `target`. With `replace` an existing one is swapped out
 * (a template made again); otherwise an existing name is refused.
 */
export async function publish(staging: string, target: string, options: { replace?: boolean } = {}): Promise<void> {
  if (options.replace && existsSync(target)) {
    const old = join(target, "..", `.removing-${process.pid}-${randomHex(3)}`);
    await rename(target, old);
    await rename(staging, target);
    rmSync(old, { recursive: true, force: true });
    return;
  }
  try {
    // Renaming onto a directory that is not empty fails, so two saves of one name cannot both win.
    if (existsSync(target)) throw Object.assign(new Error("exists"), { code: "EEXIST" });
    await rename(staging, target);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === "EEXIST" || code === "ENOTEMPTY") throw nameTaken(target);
    throw error;
  }
}

export function nameTaken(target: string): AlreadyExistsError {
  const name = target.split("/").at(-1)!;
  return new AlreadyExistsError(`Cannot save snapshot "${name}": the name is taken`, {
    hint: `pick another --name, or remove the old one with \`smolvm snapshot rm ${name}\``,
  });
}

/** Removes a stored snapshot (or template) directory: out of sight first, then deleted. */
export async function removeStored(dir: string): Promise<void> {
  const gone = join(dir, "..", `.removing-${process.pid}-${randomHex(3)}`);
  await rename(dir, gone);
  rmSync(gone, { recursive: true, force: true });
}

/** Removes the snapshot named `name`; resolves to what it was. */
export async function removeSnapshot(name: string): Promise<SnapshotInfo> {
  const dir = join(paths.snapshotsDir(), parseSnapshotName(name));
  if (!existsSync(dir)) {
    throw new NotFoundError(`Cannot remove snapshot "${name}": it does not exist`, { hint: "`smolvm snapshot list` shows the snapshots that exist" });
  }
  let info: SnapshotInfo;
  try {
    info = summarizeSnapshot({ dir, manifest: readManifest(dir) });
  } catch {
    // A damaged snapshot is removed all the same.
    info = { name, kind: "snapshot", createdAt: statSync(dir).mtimeMs, source: { id: "", name: "" }, image: "", vcpus: 0, memoryMiB: 0, backend: "", bytes: 0, files: [], dir };
  }
  await removeStored(dir);
  return info;
}

/**
 * Staging and half-removed directories whose process is gone (a save killed or out of space):
 * removed unless `dryRun`; resolves to their paths.
 */
export function strayStaging(options: { dryRun?: boolean } = {}): string[] {
  const stray: string[] = [];
  for (const root of [paths.snapshotsDir(), paths.warmDir()]) {
    let names: string[] = [];
    try {
      names = readdirSync(root).filter((name) => name.startsWith(".partial-") || name.startsWith(".removing-"));
    } catch {
      continue;
    }
    for (const name of names) {
      const pid = Number(name.startsWith(".removing-") ? name.split("-")[1] : name.split("-").at(-2));
      if (Number.isInteger(pid) && pidAlive(pid)) continue;
      const dir = join(root, name);
      stray.push(dir);
      if (options.dryRun !== true) rmSync(dir, { recursive: true, force: true });
    }
  }
  return stray;
}
