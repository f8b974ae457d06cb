/**
 * The README's SDK example is real: extracted from README.md and run as written (only the
 * package import is pointed at this checkout), against the base image.
 */
import { beforeAll, expect, setDefaultTimeout, test } from "bun:test";
import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { listSandboxes } from "../../lib/sandbox/status.ts";
import { repoRoot } from "../helpers/cli.ts";
import { cleanupAfterAll, prepareArtifacts, waitUntil } from "../helpers/vm.ts";

setDefaultTimeout(120_000);

beforeAll(async () => {
  await prepareArtifacts();
}, 30 * 60_000);
cleanupAfterAll();

/** The first ```ts block under the "## SDK" heading. */
function sdkExample(): string {
  const readme = readFileSync(join(repoRoot, "README.md"), "utf8");
  const section = readme.slice(readme.indexOf("\n## SDK\n"));
  const match = /```ts\n([\s\S]*?)```/.exec(section);
  if (!readme.includes("\n## SDK\n") || match === null) throw new Error("README.md has no ```ts block under ## SDK");
  return match[1]!;
}

test("the README's SDK example runs as written and deletes its sandbox at the end", async () => {
  const example = sdkExample();
  expect(example).toContain('from "smolvm"');
  expect(example).toContain("await using vm");
  const dir = mkdtempSync(join(tmpdir(), "smolvm-readme-"));
  try {
    const file = join(dir, "example.ts");
    writeFileSync(file, example.replace('from "smolvm"', `from ${JSON.stringify(join(repoRoot, "lib", "index.ts"))}`));
    const run = spawnSync(process.execPath, [file], { cwd: repoRoot, env: process.env, encoding: "utf8", timeout: 90_000 });
    if (run.status !== 0) console.log(run.stdout, run.stderr);
    expect(run.status).toBe(0);
    expect(run.stdout.split("\n")).toEqual([
      `Linux ${process.arch === "arm64" ? "aarch64" : "x86_64"}`,
      "hello world",
      "<h1>hello from a microVM</h1>",
      "smolvm",
      "",
    ]);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  // `await using` deleted the sandbox when the example's scope ended.
  await waitUntil(async () => (await listSandboxes()).length === 0, 10_000, "the example's sandbox to be deleted");
});
