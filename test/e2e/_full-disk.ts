/**
 * `bun _full-disk.ts`, run by bad-day.test.ts inside `unshare -m` (a mount namespace of its own):
 * mounts a 64 MiB tmpfs as the smolvm home, makes a sandbox, fills the file system, and runs
 * what a user would on that bad day, printing one JSON line: each step's exit status, output and
 * time. The tmpfs goes with the namespace.
 */
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type CliResult, runCli } from "../helpers/cli.ts";
import { mountTmpfsOrReport, unmountTmpfs } from "../helpers/tmpfs.ts";

const home = mkdtempSync(join(tmpdir(), "smolvm-full-"));
mountTmpfsOrReport(home, "64m");

interface Step extends CliResult {
  ms: number;
}

async function smolvm(...args: string[]): Promise<Step> {
  const t0 = Date.now();
  const result = await runCli(args, { env: { SMOLVM_HOME: home }, devNullStdin: true, timeoutMs: 120_000 });
  return { ...result, ms: Date.now() - t0 };
}

/** Fills the file system holding `home` to its last byte. */
function fill(): void {
  const chunk = Buffer.alloc(1024 * 1024);
  for (let i = 0; ; i++) {
    try {
      writeFileSync(join(home, "filler"), chunk, { flag: "a" });
    } catch {
      break;
    }
  }
  // The last partial megabyte.
  for (const size of [65536, 4096, 512]) {
    try {
      for (;;) writeFileSync(join(home, "filler"), Buffer.alloc(size), { flag: "a" });
    } catch {
      // Full at this size: try a smaller one.
    }
  }
}

const steps: Record<string, Step> = {};
try {
  steps.create = await smolvm("create", "--name", "full", "--image", "base", "--json");
  steps.before = await smolvm("exec", "full", "--", "sh", "-c", "echo precious > /root/note && sync && echo written");
  fill();
  // A command that writes: its last bytes cannot reach the host's disk.
  steps.write = await smolvm("exec", "full", "--", "sh", "-c", "dd if=/dev/urandom of=/root/big bs=1M count=8 2>/dev/null; sync; echo synced");
  steps.list = await smolvm("list", "--json");
  steps.small = await smolvm("exec", "full", "--", "echo", "hi");
  steps.stop = await smolvm("stop", "full");
  steps.listAfterStop = await smolvm("list", "--json");
  steps.createFull = await smolvm("create", "--name", "more", "--image", "base");
  rmSync(join(home, "filler"));
  steps.resume = await smolvm("resume", "full");
  steps.after = await smolvm("exec", "full", "--", "cat", "/root/note");
  steps.stopAfter = await smolvm("stop", "full");
  steps.delete = await smolvm("delete", "--force", "full");
  steps.left = await smolvm("list", "--all", "--json");
} finally {
  // Whatever happened, nothing of it may outlive the namespace's tmpfs.
  await smolvm("cleanup", "full");
  unmountTmpfs(home);
  rmSync(home, { recursive: true, force: true });
}
console.log(JSON.stringify({ home, steps }));
