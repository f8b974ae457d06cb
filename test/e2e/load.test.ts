/**
 * Commands under ordinary concurrency on a loaded host: 100 `smolvm exec` processes at once on
 * one sandbox while two busy loops hold the host's CPUs. A late answer is not a lost one: every
 * command succeeds, with its own output, byte for byte, and its own exit status.
 */
import { beforeAll, expect, setDefaultTimeout, test } from "bun:test";
import { spawn } from "node:child_process";
import { runCli } from "../helpers/cli.ts";
import { cleanupAfterAll, prepareArtifacts } from "../helpers/vm.ts";

setDefaultTimeout(600_000);

beforeAll(async () => {
  await prepareArtifacts();
}, 30 * 60_000);
cleanupAfterAll();

test("100 parallel execs on one sandbox under CPU load: zero failures, every output exact", async () => {
  const created = await runCli(["create", "--name", "crowd", "--image", "base", "--json"]);
  expect(created.code).toBe(0);
  const burners = [0, 1].map(() => spawn("sh", ["-c", "while :; do :; done"], { stdio: "ignore" }));
  const started = Date.now();
  try {
    const runs = await Promise.all(Array.from({ length: 100 }, (_, i) =>
      runCli(["exec", "crowd", "--", "sh", "-c", `echo start-${i}; seq 1 ${100 + i}; echo end-${i} >&2; exit ${i % 7}`], { timeoutMs: 540_000 })));
    const wrong = runs.flatMap((run, i) => {
      const stdout = `start-${i}\n${Array.from({ length: 100 + i }, (_, n) => `${n + 1}\n`).join("")}`;
      return run.code === i % 7 && run.stdout === stdout && run.stderr === `end-${i}\n` ? [] : [{ i, run }];
    });
    expect(wrong).toEqual([]);
    console.log(`100 execs under load: ${Date.now() - started} ms`);
  } finally {
    for (const burner of burners) burner.kill("SIGKILL");
  }
});
