import { expect, test } from "bun:test";
import { readFileSync } from "node:fs";
import type { AgentClient } from "../../lib/agent/client.ts";
import { withSharedAgent, type TestAgent } from "../helpers/agent.ts";

let agent: TestAgent;
let client: AgentClient;

withSharedAgent((a, c) => {
  agent = a;
  client = c;
});

/** A field of /proc/<pid>/status in KiB (VmRSS, VmHWM). */
function statusKiB(pid: number, field: string): number {
  const m = readFileSync(`/proc/${pid}/status`, "utf8").match(new RegExp(`^${field}:\\s+(\\d+) kB`, "m"));
  return m ? Number(m[1]) : NaN;
}

const MiB = 1024 * 1024;

test("200 MB from a guest process streams with both sides' memory bounded, even when read slowly", async () => {
  const total = 200_000_000;
  const rssBefore = process.memoryUsage().rss;
  const h = await client.exec({ argv: ["head", "-c", String(total), "/dev/zero"] });

  // Nobody reads for a while: the process must block instead of anything piling up.
  await new Promise((r) => setTimeout(r, 600));
  const bufferedWhilePaused = h.stdout.readableLength;
  const agentRssPaused = statusKiB(agent.pid, "VmRSS");

  let received = 0;
  let nonZero = 0;
  let peakRss = 0;
  let chunks = 0;
  for await (const chunk of h.stdout as AsyncIterable<Buffer>) {
    received += chunk.length;
    if (chunk[0] !== 0 || chunk[chunk.length - 1] !== 0) nonZero++;
    if (++chunks % 256 === 0) {
      peakRss = Math.max(peakRss, process.memoryUsage().rss);
      // Stall now and then: the slow reader must not let the agent or us buffer ahead.
      if (chunks % 2048 === 0) await new Promise((r) => setTimeout(r, 100));
    }
  }
  const result = await h.wait();
  expect(result.exitCode).toBe(0);
  expect(received).toBe(total);
  expect(nonZero).toBe(0);

  // The Readable holds at most its high-water mark plus one chunk; the rest waits in the pipe.
  expect(bufferedWhilePaused).toBeLessThanOrEqual(128 * 1024);
  expect(agentRssPaused).toBeLessThan(32 * 1024);
  const agentPeakKiB = statusKiB(agent.pid, "VmHWM");
  expect(agentPeakKiB).toBeLessThan(32 * 1024);
  const hostGrowth = peakRss - rssBefore;
  expect(hostGrowth).toBeLessThan(64 * MiB);
  console.log(
    `200 MB stream: agent peak RSS ${(agentPeakKiB / 1024).toFixed(1)} MiB, ` +
      `host RSS growth ${(hostGrowth / MiB).toFixed(1)} MiB, ${result.durationMs} ms`,
  );
}, 120_000);
