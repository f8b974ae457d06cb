import { expect, test } from "bun:test";
import { execFile } from "node:child_process";
import { join } from "node:path";
import { GUEST_AGENT_DIR, makeAgent } from "../helpers/agent.ts";

test("the frame decoder survives 1 000 000 fuzzed frames under ASan and UBSan", async () => {
  await makeAgent("fuzz");
  const seed = String(1 + Math.floor(Math.random() * 1_000_000));
  const { code, stdout, stderr } = await new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve) =>
    execFile(join(GUEST_AGENT_DIR, "build", "fuzz-frames"), ["1000000", seed], { timeout: 170_000 }, (error, out, err) =>
      resolve({ code: error ? ((error as { code?: number }).code ?? null) : 0, stdout: out, stderr: err }),
    ),
  );
  if (code !== 0) console.error(`fuzz-frames failed with seed ${seed}:\n${stderr}`);
  expect(code).toBe(0);
  expect(stderr).not.toMatch(/AddressSanitizer|runtime error/);
  expect(stdout).toMatch(/fuzz-frames: \d+ frames .*: ok/);
  const frames = Number(/fuzz-frames: (\d+) frames/.exec(stdout)![1]);
  expect(frames).toBeGreaterThanOrEqual(1_000_000);
}, 180_000);
