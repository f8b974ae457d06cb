import { expect, test } from "bun:test";
import { parseStartTicks, parseVmRssKiB, processStartEpochMs, rssMiB } from "../../../lib/bench/_proc.ts";

test("VmRSS is read from a status text in KiB", () => {
  expect(parseVmRssKiB("Name:\tqemu\nVmPeak:\t 1000 kB\nVmRSS:\t   91234 kB\nRssAnon:\t 1 kB\n")).toBe(91234);
  expect(parseVmRssKiB("Name:\tkthread\n")).toBeUndefined();
});

test("the start time is field 22 even when the command name has spaces and parentheses", () => {
  const fields = Array.from({ length: 50 }, (_, i) => String(i + 3));
  expect(parseStartTicks(`123 (a b) c) S ${fields.slice(1).join(" ")}`)).toBe(22);
});

test("this process has a resident size and started before now", () => {
  expect(rssMiB(process.pid)).toBeGreaterThan(1);
  const started = processStartEpochMs(process.pid)!;
  expect(started).toBeLessThanOrEqual(Date.now() + 20);
  expect(started).toBeGreaterThan(Date.now() - 3_600_000);
  expect(rssMiB(2 ** 22 + 1)).toBeUndefined();
});
