/**
 * Disposable QEMU processes for backend tests. Each fixture lives in its own directory under the
 * test's SMOLVM_HOME and is killed on dispose; a failing test can read its log.
 */
import { mkdtempSync } from "node:fs";
import { join } from "node:path";
import { launchQemu, type QemuProcess } from "../../../../lib/backends/qemu/process.ts";
import type { QemuSpec } from "../../../../lib/backends/qemu/args.ts";
import { which } from "../../../../lib/host/process.ts";

export const haveQemuX86 = which("qemu-system-x86_64") !== undefined;
export const haveQemuArm = which("qemu-system-aarch64") !== undefined;
export const haveQemuImg = which("qemu-img") !== undefined;

export function scratchDir(prefix: string): string {
  return mkdtempSync(join(process.env.SMOLVM_HOME!, `${prefix}-`));
}

export interface PausedQemu extends QemuProcess {
  dir: string;
  qmpSocketPath: string;
  logFile: string;
  [Symbol.asyncDispose](): Promise<void>;
}

/**
 * A QEMU with no kernel and its vCPUs stopped (`-S`): enough to drive QMP for real. Killed when
 * disposed.
 */
export async function startPausedQemu(overrides: Partial<QemuSpec> = {}): Promise<PausedQemu> {
  const dir = scratchDir("qemu");
  const qmpSocketPath = join(dir, "qmp.sock");
  const logFile = join(dir, "qemu.log");
  const qemu = await launchQemu({
    arch: "x86_64",
    accel: "tcg",
    vcpus: 1,
    memoryMiB: 64,
    network: { mode: "none" },
    qmpSocketPath,
    startPaused: true,
    rng: false,
    ...overrides,
  }, { logFile });
  return {
    ...qemu,
    dir,
    qmpSocketPath,
    logFile,
    async [Symbol.asyncDispose]() {
      qemu.kill("SIGKILL");
      await qemu.exited;
    },
  };
}

/** A TCP port nobody listens on right now. */
export async function freePort(): Promise<number> {
  const { createServer } = await import("node:net");
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const port = (server.address() as { port: number }).port;
      server.close(() => resolve(port));
    });
  });
}
