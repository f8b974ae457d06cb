/**
 * An interrupted build leaves nothing behind: a real process holding a build lock, building in a
 * temp dir and running a program that starts children of its own is sent SIGTERM (what `timeout`
 * or an agent harness sends) or SIGINT (Ctrl-C), and must take its whole process group, temp dir
 * and lock with it.
 */
import { expect, test } from "bun:test";
import { spawn } from "node:child_process";
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pidAlive } from "../../../lib/host/pids.ts";

const root = join(import.meta.dir, "..", "..", "..");

function builderScript(dir: string, marker: string): string {
  return `
import { buildInto, withLock } from ${JSON.stringify(join(root, "lib/util/cache-lock.ts"))};
import { runLogged } from ${JSON.stringify(join(root, "lib/util/run-logged.ts"))};
const dir = ${JSON.stringify(dir)};
await withLock(dir + "/.lock-key", () => buildInto(dir, "key", dir + "/key", {}, async (tempDir) => {
  // A shell whose children would outlive it if only the shell were signalled.
  await runLogged("bash", ["-c", "sleep ${marker} & sleep ${marker} & echo started; wait"], {
    logPath: tempDir + "/build.log",
    action: "test build",
    onLine: (line) => line === "started" && console.log("READY"),
  });
}));
`;
}

function markerPids(marker: string): number[] {
  const pids: number[] = [];
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const cmdline = readFileSync(`/proc/${entry}/cmdline`, "utf8");
      if (cmdline.split("\0").includes(marker)) pids.push(Number(entry));
    } catch {
      // Exited while we looked.
    }
  }
  return pids;
}

for (const [signal, status] of [["SIGTERM", 143], ["SIGINT", 130]] as const) {
  test(`${signal} during a build: exit ${status}, no children, temp dir or lock left`, async () => {
    const dir = mkdtempSync(join(tmpdir(), "smolvm-interrupt-"));
    const marker = String(300 + Math.floor(Math.random() * 1000) / 1000 + 0.0001);
    try {
      const script = join(dir, "builder.ts");
      writeFileSync(script, builderScript(dir, marker));
      // detached: SIGINT must come from the test, not from a terminal's process group.
      const child = spawn(process.execPath, [script], { stdio: ["ignore", "pipe", "inherit"], detached: true });
      const exited = new Promise<number | null>((resolve) => child.once("exit", (code) => resolve(code)));
      await new Promise<void>((resolve, reject) => {
        child.stdout!.on("data", (chunk: Buffer) => chunk.toString().includes("READY") && resolve());
        child.once("exit", () => reject(new Error("the builder ended before its build started")));
      });
      // Both sleeps forked before "started"; their exec may still be under way.
      const started = Date.now();
      while (markerPids(marker).length < 2 && Date.now() - started < 5_000) await Bun.sleep(10);
      expect(markerPids(marker).length).toBe(2);
      expect(readdirSync(dir).some((name) => name.startsWith(".tmp-key-"))).toBe(true);
      expect(existsSync(join(dir, ".lock-key"))).toBe(true);

      child.kill(signal);
      expect(await exited).toBe(status);
      const deadline = Date.now() + 5_000;
      while (markerPids(marker).some((pid) => pidAlive(pid)) && Date.now() < deadline) await Bun.sleep(20);
      expect(markerPids(marker).filter((pid) => pidAlive(pid))).toEqual([]);
      expect(readdirSync(dir).sort()).toEqual(["builder.ts"]);
    } finally {
      for (const pid of markerPids(marker)) process.kill(pid, "SIGKILL");
      await Bun.sleep(50);
      rmSync(dir, { recursive: true, force: true });
    }
  }, 30_000);
}
