/**
 * Listing a local tree for packing: every directory, file and symlink under a root, by `lstat`
 * (a symlink is listed as a link and never followed, also when it points out of the tree).
 * Sockets, FIFOs and devices are skipped and reported. A workspace listing honours Git's
 * ignore rules when the directory is in a Git work tree, and a short default ignore list
 * otherwise.
 */
import { spawn } from "node:child_process";
import { lstat, readdir, readlink } from "node:fs/promises";
import { join, posix, sep } from "node:path";

export interface TreeEntry {
  /** Relative, `/`-separated, never empty, never with `..`. */
  path: string;
  type: "file" | "directory" | "symlink";
  /** Permission bits (and setuid/setgid/sticky) as on disk. */
  mode: number;
  size: number;
  mtimeSec: number;
  linkname?: string;
}

export interface TreeListing {
  entries: TreeEntry[];
  /** Paths left out because they are neither file, directory nor symlink. */
  skipped: string[];
  /** Sum of the files' sizes. */
  bytes: number;
  /** How the selection was made: every file, Git's view, or the default ignore list. */
  selection: "all" | "git" | "default-ignores";
}

/** Left out of a workspace that is not a Git work tree (and never worth a copy into a VM). */
export const DEFAULT_IGNORES: readonly string[] = [
  "node_modules", ".venv", "venv", "__pycache__", ".mypy_cache", ".pytest_cache", ".tox", ".cache", ".DS_Store",
];

function toPosix(path: string): string {
  return sep === "/" ? path : path.split(sep).join("/");
}

async function entryFor(root: string, path: string): Promise<TreeEntry | "other" | undefined> {
  let info;
  try {
    info = await lstat(join(root, path));
  } catch (error) {
    // Listed by git but deleted from the work tree: nothing to send.
    if ((error as NodeJS.ErrnoException).code === "ENOENT") return undefined;
    throw error;
  }
  const base = { path, mode: info.mode & 0o7777, mtimeSec: Math.floor(info.mtimeMs / 1000) };
  if (info.isDirectory()) return { ...base, type: "directory", size: 0 };
  if (info.isFile()) return { ...base, type: "file", size: info.size };
  if (info.isSymbolicLink()) return { ...base, type: "symlink", size: 0, linkname: await readlink(join(root, path)) };
  return "other";
}

/** Every entry under `root` (not `root` itself), depth first, names sorted, minus `ignore`d names. */
export async function listTree(root: string, options: { ignore?: readonly string[] } = {}): Promise<TreeListing> {
  const ignore = new Set(options.ignore ?? []);
  const listing: TreeListing = { entries: [], skipped: [], bytes: 0, selection: ignore.size > 0 ? "default-ignores" : "all" };
  const walk = async (relative: string): Promise<void> => {
    const names = (await readdir(join(root, relative))).sort();
    for (const name of names) {
      if (ignore.has(name)) continue;
      const path = relative === "" ? name : `${relative}/${name}`;
      const entry = await entryFor(root, path);
      if (entry === undefined) continue;
      if (entry === "other") {
        listing.skipped.push(path);
        continue;
      }
      listing.entries.push(entry);
      listing.bytes += entry.size;
      if (entry.type === "directory") await walk(path);
    }
  };
  await walk("");
  return listing;
}

/** Paths Git lists in `root` (tracked plus untracked-but-not-ignored), or undefined outside a work tree. */
async function gitFiles(root: string): Promise<string[] | undefined> {
  return new Promise((resolve) => {
    let child;
    try {
      child = spawn("git", ["-c", "core.quotepath=off", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], {
        cwd: root,
        stdio: ["ignore", "pipe", "ignore"],
      });
    } catch {
      resolve(undefined);
      return;
    }
    const chunks: Buffer[] = [];
    child.stdout.on("data", (chunk: Buffer) => chunks.push(chunk));
    child.on("error", () => resolve(undefined));
    child.on("close", (code) => {
      if (code !== 0) return resolve(undefined);
      const names = Buffer.concat(chunks).toString("utf8").split("\0").filter(Boolean);
      // Deduplicated: a file with unmerged stages is listed once per stage.
      resolve([...new Set(names)]);
    });
  });
}

/**
 * A workspace: in a Git work tree, what Git would show (tracked and untracked, minus ignored)
 * plus the repository itself (`.git`, when it is a directory here), each file's parent
 * directories included so their modes travel too; otherwise every entry minus DEFAULT_IGNORES.
 */
export async function listWorkspace(root: string): Promise<TreeListing> {
  const files = await gitFiles(root);
  if (files === undefined) return listTree(root, { ignore: DEFAULT_IGNORES });
  const listing: TreeListing = { entries: [], skipped: [], bytes: 0, selection: "git" };
  const seen = new Set<string>();
  const add = async (path: string): Promise<void> => {
    if (seen.has(path)) return;
    const parent = posix.dirname(path);
    if (parent !== ".") await add(parent);
    seen.add(path);
    const entry = await entryFor(root, path);
    if (entry === undefined) return;
    if (entry === "other") {
      listing.skipped.push(path);
      return;
    }
    listing.entries.push(entry);
    listing.bytes += entry.size;
  };
  for (const file of files.map(toPosix)) await add(file.replace(/\/+$/, ""));
  const dotGit = await entryFor(root, ".git");
  if (dotGit !== undefined && dotGit !== "other" && dotGit.type === "directory") {
    listing.entries.push(dotGit);
    for (const entry of (await listTree(join(root, ".git"))).entries) {
      const inner = { ...entry, path: `.git/${entry.path}` };
      listing.entries.push(inner);
      listing.bytes += inner.size;
    }
  }
  listing.entries.sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
  return listing;
}
