/**
 * `npm test [PATH...]`: runs every test file under the given paths (default `test/`), each in its
 * own `bun test` process, and closes with one line, `N passed, N failed`, which CI reads.
 *
 * One process per file gives every file a fresh smolvm home (test/preload.ts runs per
 * process), so sandboxes and state rows of one file never show up in another's assertions, and
 * a file that crashes cannot take the rest of the suite down with it. Bun's own summary goes to
 * stderr in a shape CI does not parse, so the counts come from each run's JUnit report.
 */
import { spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, relative, resolve } from "node:path";

const root = resolve(import.meta.dirname, "..");
const targets = process.argv.slice(2).filter((arg) => !arg.startsWith("-"));
const flags = process.argv.slice(2).filter((arg) => arg.startsWith("-"));

function testFiles(path: string): string[] {
  if (!existsSync(path)) {
    console.error(`test: no such file or directory: ${path}`);
    process.exit(2);
  }
  if (statSync(path).isFile()) return [path];
  return readdirSync(path, { withFileTypes: true })
    .sort((a, b) => a.name.localeCompare(b.name))
    .flatMap((entry) => {
      const full = join(path, entry.name);
      if (entry.isDirectory()) return entry.name === "node_modules" ? [] : testFiles(full);
      return /\.test\.[jt]s$/.test(entry.name) ? [full] : [];
    });
}

const files = (targets.length > 0 ? targets : ["test"]).flatMap((t) => testFiles(resolve(t)));
const scratch = mkdtempSync(join(tmpdir(), "smolvm-junit-"));
let passed = 0;
let failed = 0;
let skipped = 0;
const failedFiles: string[] = [];

for (const [index, file] of files.entries()) {
  const report = join(scratch, `${index}.xml`);
  // Real VMs under TCG boot in about a second, but a loaded CI box can take far longer.
  const run = spawnSync(process.execPath, ["test", "--timeout=120000", "--reporter=junit", `--reporter-outfile=${report}`, ...flags, file], {
    cwd: root,
    stdio: "inherit",
  });
  let filePassed = 0;
  let fileFailed = 0;
  try {
    const xml = readFileSync(report, "utf8");
    for (const match of xml.matchAll(/<testcase\b[^>]*?(\/>|>([\s\S]*?)<\/testcase>)/g)) {
      const body = match[2] ?? "";
      if (/<(failure|error)\b/.test(body)) fileFailed++;
      else if (/<skipped\b/.test(body)) skipped++;
      else filePassed++;
    }
  } catch {
    // No report: bun failed before running anything (a syntax error, a crash at load).
  }
  // A crash, an error between tests or a missing report still fails the file.
  if (run.status !== 0 && fileFailed === 0) fileFailed = 1;
  passed += filePassed;
  failed += fileFailed;
  if (fileFailed > 0) failedFiles.push(relative(root, file));
}
rmSync(scratch, { recursive: true, force: true });

if (failedFiles.length > 0) console.log(`failing files: ${failedFiles.join(", ")}`);
if (skipped > 0) console.log(`${skipped} skipped`);
console.log(`${passed} passed, ${failed} failed`);
process.exit(failed > 0 ? 1 : 0);
