import { describe, expect, test } from "bun:test";
import { percentile, percentileSorted, roundForReport, summarize } from "../../bench/stats.ts";

describe("percentiles", () => {
  test("interpolate linearly between the nearest ranks", () => {
    expect(percentile([1, 2, 3, 4], 50)).toBe(2.5);
    expect(percentile([10, 20, 30, 40, 50], 90)).toBe(46);
    expect(percentile([4, 1, 3, 2], 0)).toBe(1);
    expect(percentile([4, 1, 3, 2], 100)).toBe(4);
  });

  test("p50/p90/p99 of 1..200 sit where a spreadsheet puts them", () => {
    const samples = Array.from({ length: 200 }, (_, i) => 200 - i);
    const stats = summarize(samples)!;
    expect(stats.p50).toBeCloseTo(100.5, 10);
    expect(stats.p90).toBeCloseTo(180.1, 10);
    expect(stats.p99).toBeCloseTo(198.01, 10);
    expect(stats).toMatchObject({ n: 200, min: 1, max: 200, mean: 100.5 });
  });

  test("one sample is every percentile; none is NaN", () => {
    expect(percentile([7], 99)).toBe(7);
    expect(Number.isNaN(percentileSorted([], 50))).toBe(true);
  });

  test("a percentile outside 0..100 is refused", () => {
    expect(() => percentile([1], 101)).toThrow(RangeError);
    expect(() => percentile([1], -1)).toThrow(RangeError);
  });

  test("summaries ignore non-finite samples and are null without any", () => {
    expect(summarize([])).toBeNull();
    expect(summarize([Number.NaN, Infinity])).toBeNull();
    expect(summarize([1, Number.NaN, 3])).toMatchObject({ n: 2, p50: 2 });
  });
});

test("report rounding keeps 3 significant digits for small values and fewer for large ones", () => {
  expect(roundForReport(0.123456)).toBe(0.123);
  expect(roundForReport(5.4321)).toBe(5.43);
  expect(roundForReport(54.321)).toBe(54.3);
  expect(roundForReport(1234.5)).toBe(1235);
});
