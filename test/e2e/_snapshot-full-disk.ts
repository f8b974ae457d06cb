/**
 * `bun _snapshot-full-disk.ts`, run by snapshot.test.ts inside `unshare -m` (a mount namespace of
 * its own): mounts a 4 MiB tmpfs over the home's snapshot directory (a guest's state alone is
 * several times that), makes a sandbox (its supervisor and QEMU live in the namespace too, so
 * they see the small file system), and tries to snapshot it, printing one JSON line with each
 * step's exit status and output and what the snapshot directory held after. The tmpfs goes with
 * the namespace.
 */
import { mkdirSync, readdirSync } from "node:fs";
import { type CliResult, runCli } from "../helpers/cli.ts";
import { mountTmpfsOrReport, unmountTmpfs } from "../helpers/tmpfs.ts";
import { paths } from "../../lib/paths.ts";

const dir = paths.snapshotsDir();
mkdirSync(dir, { recursive: true });
mountTmpfsOrReport(dir, "4m");

function smolvm(...args: string[]): Promise<CliResult> {
  return runCli(args, { devNullStdin: true, timeoutMs: 120_000 });
}

const steps: Record<string, CliResult> = {};
let left: string[] = [];
try {
  steps.create = await smolvm("create", "--name", "full", "--image", "base", "--no-warm", "--json");
  steps.snapshot = await smolvm("snapshot", "create", "full", "--name", "toobig", "--json");
  left = readdirSync(dir);
  steps.list = await smolvm("list", "--json");
  steps.after = await smolvm("exec", "full", "--", "echo", "still");
  steps.delete = await smolvm("delete", "--force", "full");
} finally {
  // Whatever happened, nothing of it may outlive the namespace's tmpfs.
  await smolvm("cleanup", "full");
  unmountTmpfs(dir);
}
console.log(JSON.stringify({ steps, left }));
