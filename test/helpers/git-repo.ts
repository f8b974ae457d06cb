/** Git repositories the coding-agent tests copy into sandboxes as a working directory. */
import { spawnSync } from "node:child_process";

export function git(args: string[], cwd: string): void {
  const run = spawnSync("git", ["-c", "user.email=t@example.com", "-c", "user.name=t", ...args], { cwd });
  if (run.status !== 0) throw new Error(`git ${args.join(" ")}: ${run.stderr}`);
}

/** Makes `repo` a repository with everything in it committed once. */
export function commitAll(repo: string): void {
  git(["init", "-q"], repo);
  git(["add", "-A"], repo);
  git(["commit", "-qm", "init"], repo);
}
