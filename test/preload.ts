/**
 * Runs before every test file (scripts/test.ts gives each file its own process): a fresh, empty
 * smolvm home, so tests never see each other's sandboxes or the user's own. Kernels and images
 * are slow to build, so the cache stays shared across runs (CI keeps it under the user's home).
 */
import { mkdtempSync, rmSync } from "node:fs";
import { homedir, tmpdir } from "node:os";
import { join } from "node:path";

const home = mkdtempSync(join(tmpdir(), "smolvm-test-home-"));
process.env.SMOLVM_HOME = home;
process.env.SMOLVM_CACHE ??= join(homedir(), ".cache", "smolvm-test");
// The tests delete their sandboxes; what is left is the state file and the log.
process.on("exit", () => rmSync(home, { recursive: true, force: true }));
