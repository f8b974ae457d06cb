/**
 * Temporary directories that do not outlive their test process: test/preload.ts removes every
 * one made here after the process's last test, when nothing of the file uses them any more
 * (its own afterAll hooks have run). Bun's test runner never emits "exit", so a handler there
 * would leave them behind.
 *
 * Imports nothing of lib/: the preload makes the test home with it before any lib/ import.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

const made: string[] = [];

/** A new, empty directory under the system's temp directory, named `<prefix>XXXXXX`. */
export function scratchDir(prefix: string): string {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  made.push(dir);
  return dir;
}

export function removeScratchDirs(): void {
  for (const dir of made.splice(0)) rmSync(dir, { recursive: true, force: true });
}
