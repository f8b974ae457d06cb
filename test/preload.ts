/**
 * Runs before every test file (scripts/test.ts gives each file its own process): a fresh, empty
 * smolvm home, so tests never see each other's sandboxes or the user's own. Kernels and images
 * are slow to build, so the cache stays shared across runs (CI keeps it under the user's home).
 */
import { afterAll } from "bun:test";
import { homedir } from "node:os";
import { join } from "node:path";
import { removeScratchDirs, scratchDir } from "./helpers/scratch.ts";

process.env.SMOLVM_HOME = scratchDir("smolvm-test-home-");
process.env.SMOLVM_CACHE ??= join(homedir(), ".cache", "smolvm-test");
// The tests delete their sandboxes; what is left is the state file and the log. Registered here,
// the hook runs after every hook of the test file. SMOLVM_TEST_KEEP_HOMES=1 keeps them (and each
// home's smolvm.log) for a look after a failure; their paths are printed.
if (process.env.SMOLVM_TEST_KEEP_HOMES === "1") afterAll(() => console.error(`kept test home: ${process.env.SMOLVM_HOME}`));
else afterAll(removeScratchDirs);
