import { expect, test } from "bun:test";
import { spawnSync } from "node:child_process";
import { existsSync, mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { gitCommitOf, versionInfo } from "../../lib/version.ts";
import { repoRoot } from "../helpers/cli.ts";
import { scratchDir } from "../helpers/scratch.ts";

const A = "a".repeat(40);
const B = "b".repeat(40);

function layout(files: Record<string, string>): string {
  const root = scratchDir("smolvm-git-");
  for (const [path, text] of Object.entries(files)) {
    mkdirSync(join(root, path, ".."), { recursive: true });
    writeFileSync(join(root, path), text);
  }
  return root;
}

test("the commit comes from .git: loose ref, packed ref, detached HEAD, linked worktree, subdirectory", () => {
  const loose = layout({ ".git/HEAD": "ref: refs/heads/main\n", ".git/refs/heads/main": `${A}\n`, "src/x": "" });
  expect(gitCommitOf(loose)).toBe(A);
  expect(gitCommitOf(join(loose, "src"))).toBe(A);
  const packed = layout({ ".git/HEAD": "ref: refs/heads/main\n", ".git/packed-refs": `# pack-refs with: peeled\n${B} refs/heads/main\n${A} refs/tags/v1\n` });
  expect(gitCommitOf(packed)).toBe(B);
  expect(gitCommitOf(layout({ ".git/HEAD": `${B}\n` }))).toBe(B);
  const main = layout({ ".git/HEAD": "ref: refs/heads/main\n", ".git/refs/heads/feature": `${B}\n`, ".git/worktrees/wt/HEAD": "ref: refs/heads/feature\n", ".git/worktrees/wt/commondir": "../..\n" });
  const worktree = layout({ ".git": `gitdir: ${join(main, ".git", "worktrees", "wt")}\n` });
  expect(gitCommitOf(worktree)).toBe(B);
});

test("no checkout, an unborn branch or a corrupt HEAD gives no commit", () => {
  expect(gitCommitOf(layout({ "a/b": "" }))).toBeUndefined();
  expect(gitCommitOf(layout({ ".git/HEAD": "ref: refs/heads/main\n" }))).toBeUndefined();
  expect(gitCommitOf(layout({ ".git/HEAD": "garbage\n" }))).toBeUndefined();
});

test("from this checkout the commit is git's HEAD", () => {
  const head = spawnSync("git", ["rev-parse", "HEAD"], { cwd: repoRoot, encoding: "utf8" });
  if (head.status !== 0) return void console.log("skipping: not a git checkout");
  expect(versionInfo().commit).toBe(head.stdout.trim());
});

test("a compiled binary names its version, the commit it was built from and its target", () => {
  const binary = join(repoRoot, "dist", `smolvm-${process.platform}-${process.arch}`);
  if (!existsSync(binary)) return void console.log(`skipping: ${binary} is missing (npm run build)`);
  const home = scratchDir("smolvm-version-");
  const run = spawnSync(binary, ["version", "--json"], { encoding: "utf8", env: { ...process.env, SMOLVM_HOME: home } });
  const data = JSON.parse(run.stdout).data;
  expect(data.target).toBe(`${process.platform}-${process.arch}`);
  expect(data.version).toBe(versionInfo().version);
  expect(data.commit).toMatch(/^[0-9a-f]{40}$/);
  // A commit this repository really has (the binary may be older than HEAD).
  const known = spawnSync("git", ["cat-file", "-e", `${data.commit}^{commit}`], { cwd: repoRoot });
  if (spawnSync("git", ["rev-parse"], { cwd: repoRoot }).status === 0) expect(known.status).toBe(0);
});
