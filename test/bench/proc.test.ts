import { expect, test } from "bun:test";
import { parsePrivateKiB, parseStartTicks, parseVmRssKiB, privateMiB, processStartEpochMs, rssMiB } from "../../bench/_proc.ts";

test("VmRSS is read from a status text in KiB", () => {
  expect(parseVmRssKiB("Name:\tqemu\nVmPeak:\t 1000 kB\nVmRSS:\t   91234 kB\nRssAnon:\t 1 kB\n")).toBe(91234);
  expect(parseVmRssKiB("Name:\tkthread\n")).toBeUndefined();
});

test("private memory is Private_Clean + Private_Dirty of smaps_rollup, in KiB", () => {
  const rollup = "55d0-7ffd ---p 00000000 00:00 0 [rollup]\nRss: 50944 kB\nPss: 29395 kB\nShared_Clean: 41772 kB\nShared_Dirty: 0 kB\nPrivate_Clean: 336 kB\nPrivate_Dirty: 8836 kB\n";
  expect(parsePrivateKiB(rollup)).toBe(9172);
  expect(parsePrivateKiB("Rss: 1 kB\n")).toBeUndefined();
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
  const own = privateMiB(process.pid)!;
  expect(own).toBeGreaterThan(1);
  expect(own).toBeLessThanOrEqual(rssMiB(process.pid)! + 1);
  expect(privateMiB(2 ** 22 + 1)).toBeUndefined();
});
