/**
 * Runs before every test file: each test process gets a fresh, empty smolvm home so tests never
 * see each other's sandboxes or the user's own. Kernels and images are slow to build, so the
 * cache stays shared across runs (CI keeps it under the user's home between runs).
 */
import { mkdtempSync } from "node:fs";
import { homedir, tmpdir } from "node:os";
import { join } from "node:path";

process.env.SMOLVM_HOME = mkdtempSync(join(tmpdir(), "smolvm-test-home-"));
process.env.SMOLVM_CACHE ??= join(homedir(), ".cache", "smolvm-test");
