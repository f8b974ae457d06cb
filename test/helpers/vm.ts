/**
 * Shared set-up for tests that boot real VMs: the kernel and the `base` image come from the
 * shared cache (built on first use, which CI does up front), and every sandbox a test makes is
 * deleted afterwards even when the test fails.
 */
import { afterAll } from "bun:test";
import { ensureKernel } from "../../lib/kernel/build.ts";
import { ensureImage } from "../../lib/images/build.ts";
import { listSandboxes } from "../../lib/sandbox/status.ts";
import { deleteSandbox } from "../../lib/sandbox/lifecycle.ts";

let prepared: Promise<{ kernel: string; base: string }> | undefined;

export function prepareArtifacts(): Promise<{ kernel: string; base: string }> {
  prepared ??= (async () => ({ kernel: await ensureKernel(), base: (await ensureImage("base")).path }))();
  return prepared;
}

/** Deletes every sandbox of this test process's home when the file's tests end. */
export function cleanupAfterAll(): void {
  afterAll(async () => {
    for (const vm of await listSandboxes()) await deleteSandbox(vm.id).catch(() => {});
  });
}

export function processesMatching(pattern: string): string[] {
  const result = Bun.spawnSync(["pgrep", "-af", pattern]);
  return result.stdout.toString().split("\n").filter((line) => line.trim() !== "" && !line.includes("pgrep"));
}

export async function waitUntil(check: () => boolean | Promise<boolean>, timeoutMs: number, what: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}
