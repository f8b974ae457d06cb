/**
 * Micro-benchmark of the agent protocol over a Unix socket (not a test; run it by hand):
 *
 *   bun test/guest-agent/bench-agent.ts [iterations=2000]
 *
 * Compares, as medians: a raw 64-byte echo through a separate process (the floor for any
 * request/response over this kind of socket), an agent ping through AgentClient, a full
 * `exec true` (fork, exec, wait, result), and this process spawning `true` itself (the floor for
 * any exec on this machine). The ratios are what matter; absolute numbers move with the load.
 */
import { spawn, spawnSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { connect, type Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { startTestAgent } from "../helpers/agent.ts";

const iterations = Number(process.argv[2] ?? 2000);

function stats(samples: number[]): { median: number; p99: number } {
  const s = [...samples].sort((a, b) => a - b);
  return { median: s[Math.floor(s.length / 2)]!, p99: s[Math.floor(s.length * 0.99)]! };
}

async function time(n: number, fn: () => Promise<unknown>): Promise<number[]> {
  for (let i = 0; i < Math.min(50, n); i++) await fn(); // warm up
  const out: number[] = [];
  for (let i = 0; i < n; i++) {
    const t0 = performance.now();
    await fn();
    out.push((performance.now() - t0) * 1000);
  }
  return out;
}

/** A 64-byte echo through a separate process on a Unix socket. */
async function rawEcho(n: number): Promise<number[]> {
  const dir = mkdtempSync(join(tmpdir(), "smolvm-bench-"));
  const path = join(dir, "echo.sock");
  const server = spawn(
    process.execPath,
    ["-e", `require("node:net").createServer((s) => s.pipe(s)).listen(${JSON.stringify(path)}, () => console.log("up"))`],
    { stdio: ["ignore", "pipe", "inherit"] },
  );
  await new Promise<void>((resolve) => server.stdout!.once("data", () => resolve()));
  const sock: Socket = await new Promise((resolve) => {
    const s = connect(path, () => resolve(s));
  });
  sock.setNoDelay?.(true);
  const msg = Buffer.alloc(64, 7);
  let pending: (() => void) | undefined;
  let got = 0;
  sock.on("data", (b: Buffer) => {
    got += b.length;
    if (got >= 64) {
      got -= 64;
      pending?.();
    }
  });
  const samples = await time(n, () => new Promise<void>((resolve) => {
    pending = resolve;
    sock.write(msg);
  }));
  sock.destroy();
  server.kill();
  rmSync(dir, { recursive: true, force: true });
  return samples;
}

const agent = await startTestAgent();
try {
  const client = await agent.connect();
  const echo = stats(await rawEcho(iterations));
  const ping = stats(await time(iterations, () => client.ping()));
  const execN = Math.max(50, Math.floor(iterations / 10));
  const exec = stats(await time(execN, () => client.run(["true"])));
  const local = stats(await time(execN, async () => spawnSync("true")));
  const row = (name: string, s: { median: number; p99: number }) =>
    `${name.padEnd(28)} ${s.median.toFixed(0).padStart(7)} µs ${s.p99.toFixed(0).padStart(8)} µs ${(s.median / echo.median).toFixed(1).padStart(7)}x`;
  console.log(`${"".padEnd(28)} ${"median".padStart(10)} ${"p99".padStart(11)} ${"vs echo".padStart(8)}`);
  console.log(row("raw 64-byte echo (unix)", echo));
  console.log(row("agent ping", ping));
  console.log(row("agent exec true", exec));
  console.log(row("local spawnSync true", local));
  await client.close();
} finally {
  await agent.stop();
}
