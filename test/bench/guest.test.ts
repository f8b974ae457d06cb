import { expect, test } from "bun:test";
import { spawnSync } from "node:child_process";
import { forkExecScript, parseForkExec } from "../../bench/guest.ts";

test("the fork/exec script runs in a POSIX shell and yields a per-exec time", () => {
  const run = spawnSync("/bin/sh", ["-c", forkExecScript(20)], { encoding: "utf8" });
  expect(run.status).toBe(0);
  const perExec = parseForkExec(run.stdout, 20);
  expect(perExec).toBeGreaterThanOrEqual(0);
});

test("the script calls /bin/true by path, so a busybox shell cannot run it as a built-in", () => {
  expect(forkExecScript(200)).toContain("do /bin/true;");
  expect(forkExecScript(200)).toContain("-lt 200");
  expect(() => forkExecScript(0)).toThrow(RangeError);
});

test("per-exec time is (exec loop - empty loop) / iterations, in ms", () => {
  expect(parseForkExec("10.00 10.90 11.00\n", 200)).toBeCloseTo(4, 10);
  expect(parseForkExec("10.00 10.00 10.50", 100)).toBe(0);
  expect(parseForkExec("garbage", 200)).toBeUndefined();
  expect(parseForkExec("1 2", 200)).toBeUndefined();
});
