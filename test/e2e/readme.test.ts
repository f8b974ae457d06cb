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

/** Every ```ts block of the "## SDK" section: the main example, then one per noun. */
function sdkExamples(): string[] {
  const readme = readFileSync(join(repoRoot, "README.md"), "utf8");
  if (!readme.includes("\n## SDK\n")) throw new Error("README.md has no ## SDK section");
  const section = readme.slice(readme.indexOf("\n## SDK\n") + 1);
  const end = section.indexOf("\n## ", 1);
  return [...(end < 0 ? section : section.slice(0, end)).matchAll(/```ts\n([\s\S]*?)```/g)].map((m) => m[1]!);
}

/** What an example prints: the comment after each console.log, the guest's arch as this host's. */
function expectedOutput(example: string): string[] {
  const arch = process.arch === "arm64" ? "aarch64" : "x86_64";
  const lines = example.split("\n").filter((line) => line.startsWith("console.log(")).map((line) => {
    const at = line.lastIndexOf("// ");
    if (at < 0) throw new Error(`README example line without its expected output: ${line}`);
    return line.slice(at + 3).replace("x86_64", arch);
  });
  return [...lines, ""];
}

const examples = sdkExamples();

/** The main example first, then one per noun group, in the README's order. */
const NAMES = ["main", "vm.commands", "vm.files", "vm.env", "vm.ports", "vm.network", "vm.snapshot"];

test("the README has the main SDK example and one per noun (and for snapshots), each using it", () => {
  expect(examples.length).toBe(NAMES.length);
  NAMES.slice(1).forEach((noun, i) => expect(examples[i + 1]).toMatch(new RegExp(`${noun.replace(".", "\\.")}[.(]`)));
});

test.each(examples.map((example, i) => [NAMES[i] ?? String(i), example]))(
  "the README's %s SDK example runs as written and deletes its sandbox at the end",
  async (_name, example) => {
    expect(example).toContain('from "smolvm"');
    expect(example).toContain("await using vm");
    const dir = mkdtempSync(join(tmpdir(), "smolvm-readme-"));
    try {
      const file = join(dir, "example.ts");
      writeFileSync(file, example.replace('from "smolvm"', `from ${JSON.stringify(join(repoRoot, "lib", "index.ts"))}`));
      const run = spawnSync(process.execPath, [file], { cwd: repoRoot, env: process.env, encoding: "utf8", timeout: 90_000 });
      if (run.status !== 0) console.log(run.stdout, run.stderr);
      expect(run.status).toBe(0);
      expect(run.stdout.split("\n")).toEqual(expectedOutput(example));
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
    // `await using` deleted the sandbox when the example's scope ended.
    await waitUntil(async () => (await listSandboxes()).length === 0, 10_000, "the example's sandbox to be deleted");
  },
);
