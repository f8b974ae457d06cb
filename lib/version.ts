/**
 * Build identity. `scripts/build.ts` replaces these globals through `--define` when it compiles
 * a binary; running from source falls back to package.json's version, the checkout's commit and
 * the live platform.
 */
import { readFileSync } from "node:fs";
import { dirname, isAbsolute, join } from "node:path";
import { arch, platform } from "node:process";
import pkg from "../package.json" with { type: "json" };

declare const SMOLVM_BUILD_VERSION: string | undefined;
declare const SMOLVM_BUILD_TARGET: string | undefined;
declare const SMOLVM_BUILD_COMMIT: string | undefined;

export interface VersionInfo {
  version: string;
  /** The git commit the build (or the checkout) is at, 40 hex digits, or `unknown` outside git. */
  commit: string;
  /** bun-<version>, deno-<version> or node-<version>: what is executing this code. */
  runtime: string;
  /** The compile target (`linux-x64`...) or `source` when run from a checkout. */
  target: string;
  platform: string;
  arch: string;
}

let sourceCommit: string | undefined;

export function versionInfo(): VersionInfo {
  const versions = process.versions as Record<string, string | undefined>;
  const runtime = versions.bun
    ? `bun-${versions.bun}`
    : versions.deno
      ? `deno-${versions.deno}`
      : `node-${versions.node}`;
  const commit = typeof SMOLVM_BUILD_COMMIT === "string"
    ? SMOLVM_BUILD_COMMIT
    : (sourceCommit ??= gitCommitOf(join(import.meta.dirname, "..")) ?? "unknown");
  return {
    version: typeof SMOLVM_BUILD_VERSION === "string" ? SMOLVM_BUILD_VERSION : pkg.version,
    commit,
    runtime,
    target: typeof SMOLVM_BUILD_TARGET === "string" ? SMOLVM_BUILD_TARGET : "source",
    platform,
    arch,
  };
}

const SHA1_HEX = /^[0-9a-f]{40}$/;

/**
 * The commit HEAD points at in the git checkout that holds `dir`, read from `.git` directly:
 * every command builds the version string, and spawning `git` for it would cost milliseconds
 * (and need git installed). Handles linked worktrees (`.git` is a file naming the real git dir),
 * detached HEADs and packed refs. Undefined when `dir` is in no checkout or HEAD is unborn.
 */
export function gitCommitOf(dir: string): string | undefined {
  for (let current = dir; ; current = dirname(current)) {
    const gitDir = gitDirAt(join(current, ".git"));
    if (gitDir !== undefined) return resolveHead(gitDir);
    if (dirname(current) === current) return undefined;
  }
}

function gitDirAt(dotGit: string): string | undefined {
  const text = readText(dotGit);
  if (text === undefined) {
    // A directory (readFileSync fails with EISDIR) or nothing at all.
    return readText(join(dotGit, "HEAD")) === undefined ? undefined : dotGit;
  }
  const pointer = /^gitdir:\s*(.+)$/m.exec(text)?.[1]?.trim();
  if (pointer === undefined) return undefined;
  return isAbsolute(pointer) ? pointer : join(dirname(dotGit), pointer);
}

function resolveHead(gitDir: string): string | undefined {
  const head = readText(join(gitDir, "HEAD"))?.trim();
  if (head === undefined) return undefined;
  if (SHA1_HEX.test(head)) return head;
  const ref = /^ref:\s*(\S+)$/.exec(head)?.[1];
  if (ref === undefined) return undefined;
  // A linked worktree keeps its HEAD but shares refs with the main git dir named in `commondir`.
  const common = readText(join(gitDir, "commondir"))?.trim();
  const commonDir = common === undefined ? gitDir : isAbsolute(common) ? common : join(gitDir, common);
  for (const base of [gitDir, commonDir]) {
    const loose = readText(join(base, ref))?.trim();
    if (loose !== undefined && SHA1_HEX.test(loose)) return loose;
  }
  const packed = readText(join(commonDir, "packed-refs")) ?? "";
  for (const line of packed.split("\n")) {
    const [sha, name] = line.split(" ");
    if (name === ref && sha !== undefined && SHA1_HEX.test(sha)) return sha;
  }
  return undefined;
}

function readText(path: string): string | undefined {
  try {
    return readFileSync(path, "utf8");
  } catch {
    return undefined;
  }
}
