/**
 * What `smolvm prune` may remove of the published cache: every other version's directory, and in
 * this version's, artifacts the cached manifest no longer lists, downloads that no longer match
 * it, and leftovers of killed pulls. Anything a sandbox boots from is kept, wherever it is.
 */
import { readdirSync, readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import { isAlive } from "../util/cache-lock.ts";
import { parseManifest, type ReleaseManifest } from "./manifest.ts";
import { artifactDirName, listVersionDirs, versionDir } from "./store.ts";

export interface PublishedPruneEntry {
  path: string;
  why: string;
}

/**
 * The paths to remove. `used(dir)` says whether a sandbox boots from something under `dir`.
 */
export async function publishedPruneCandidates(currentVersion: string, used: (dir: string) => boolean): Promise<PublishedPruneEntry[]> {
  const doomed: PublishedPruneEntry[] = [];
  for (const version of await listVersionDirs()) {
    const dir = versionDir(version);
    const entries = readdirSync(dir);
    if (version !== currentVersion) {
      if (!used(dir)) {
        doomed.push({ path: dir, why: `published images of smolvm ${version}` });
        continue;
      }
      // A sandbox still boots from something here: keep that, take the rest.
      for (const name of entries) {
        const path = join(dir, name);
        if (isDirectory(path) && !name.startsWith(".") && !used(path)) doomed.push({ path, why: `published by smolvm ${version}` });
      }
      continue;
    }
    const manifest = readCachedManifest(dir);
    const listed = new Set<string>();
    const downloads = new Set<string>();
    for (const row of manifest?.rows ?? []) {
      listed.add(artifactDirName("kernel", row.arch, row.kernel.sha256));
      listed.add(artifactDirName("rootfs", row.arch, row.rootfs.sha256, row.image));
      for (const entry of [row.kernel, row.rootfs]) downloads.add(`${entry.file}-${entry.sha256.slice(0, 16)}.partial`);
    }
    for (const name of entries) {
      const path = join(dir, name);
      if (name.startsWith(".tmp-") && !lockHeld(dir, name)) {
        doomed.push({ path, why: "the remains of an interrupted pull" });
      } else if (!name.startsWith(".") && isDirectory(path) && manifest !== undefined && !listed.has(name) && !used(path)) {
        doomed.push({ path, why: "no longer in the release's manifest" });
      }
    }
    for (const name of safeReaddir(join(dir, ".downloads"))) {
      if (manifest !== undefined && !downloads.has(name)) doomed.push({ path: join(dir, ".downloads", name), why: "a download the manifest no longer lists" });
    }
  }
  return doomed;
}

function readCachedManifest(dir: string): ReleaseManifest | undefined {
  try {
    return parseManifest(readFileSync(join(dir, "release.json")), { url: join(dir, "release.json") });
  } catch {
    return undefined;
  }
}

/** Whether a live process holds the lock of the pull that owns temp dir `.tmp-<label>-XXXX`. */
function lockHeld(dir: string, tempName: string): boolean {
  const label = tempName.slice(".tmp-".length).replace(/-[^-]+$/, "");
  try {
    const pid = Number.parseInt(readFileSync(join(dir, `.lock-${label}`), "utf8"), 10);
    return Number.isFinite(pid) && isAlive(pid);
  } catch {
    return false;
  }
}

function isDirectory(path: string): boolean {
  try {
    return statSync(path).isDirectory();
  } catch {
    return false;
  }
}

function safeReaddir(dir: string): string[] {
  try {
    return readdirSync(dir);
  } catch {
    return [];
  }
}
