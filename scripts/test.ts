/**
 * `npm test`: runs `bun test` over the suite (or the paths given) and closes with one line,
 * `N passed, N failed`, which CI reads. Bun's own summary goes to stderr in a shape CI does not
 * parse, so the counts come from its JUnit report.
 */
import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

const scratch = mkdtempSync(join(tmpdir(), "smolvm-junit-"));
const report = join(scratch, "report.xml");
const args = process.argv.slice(2);
// Real VMs under TCG boot in about a second, but a loaded CI box can take far longer.
const run = spawnSync(process.execPath, ["test", "--timeout=120000", "--reporter=junit", `--reporter-outfile=${report}`, ...args], {
  stdio: "inherit",
});

let passed = 0;
let failed = 0;
let skipped = 0;
try {
  const xml = readFileSync(report, "utf8");
  for (const match of xml.matchAll(/<testcase\b[^>]*?(\/>|>([\s\S]*?)<\/testcase>)/g)) {
    const body = match[2] ?? "";
    if (/<(failure|error)\b/.test(body)) failed++;
    else if (/<skipped\b/.test(body)) skipped++;
    else passed++;
  }
} catch {
  // No report means bun failed before running anything (a syntax error, no test files).
  failed = Math.max(failed, 1);
}
rmSync(scratch, { recursive: true, force: true });

// A crash after some tests passed still has to fail the run.
if (run.status !== 0 && failed === 0) failed = 1;
if (skipped > 0) console.log(`${skipped} skipped`);
console.log(`${passed} passed, ${failed} failed`);
process.exit(failed > 0 ? 1 : 0);
