import { describe, expect, test } from "bun:test";
import { phaseResult } from "../../bench/report.ts";
import { logTicks, plottedPhases, renderSvg, xmlEscape } from "../../bench/svg.ts";
import { reportFrom, HEALTHY } from "./_fixtures.ts";
import { xmlProblems } from "./_xml.ts";

function seriesIds(svg: string): string[] {
  return [...svg.matchAll(/<g class="series" data-phase="([^"]+)"/g)].map((m) => m[1]!);
}

describe("renderSvg", () => {
  test("produces well-formed XML with an svg root", () => {
    const svg = renderSvg(reportFrom());
    expect(xmlProblems(svg)).toEqual([]);
    expect(svg).toContain('<svg xmlns="http://www.w3.org/2000/svg"');
  });

  test("draws one series per latency phase with samples, and none for throughput or memory", () => {
    const report = reportFrom();
    const ids = seriesIds(renderSvg(report));
    const latency = report.phases.filter((p) => p.unit === "ms").map((p) => p.id);
    expect(ids).toEqual(latency);
    expect(new Set(ids).size).toBe(ids.length);
    expect(ids).not.toContain("upload.agent");
    expect(ids).not.toContain("memory.qemu");
  });

  test("every sample of a series is a dot", () => {
    const svg = renderSvg(reportFrom());
    const group = /<g class="series" data-phase="floor.ping"[^>]*>([\s\S]*?)<\/g>/.exec(svg)![1]!;
    expect([...group.matchAll(/<circle /g)].length).toBe(11);
  });

  test("phases without samples are left out, and a run without any still renders", () => {
    const report = reportFrom({ ...HEALTHY, "warm-command.ssh": "unavailable: no sshd" });
    expect(seriesIds(renderSvg(report))).not.toContain("warm-command.ssh");
    const empty = reportFrom({});
    expect(plottedPhases(empty)).toEqual([]);
    const svg = renderSvg(empty);
    expect(xmlProblems(svg)).toEqual([]);
    expect(svg).toContain("no latency samples");
  });

  test("text from the machine is escaped", () => {
    const svg = renderSvg(reportFrom());
    expect(svg).toContain("Test CPU &lt;fast&gt; &amp; &quot;quoted&quot;");
    expect(xmlProblems(svg)).toEqual([]);
  });

  test("thousands of samples are thinned to at most 1000 dots per series", () => {
    const report = reportFrom();
    const i = report.phases.findIndex((p) => p.id === "warm-command.agent");
    report.phases[i] = phaseResult("warm-command.agent", Array.from({ length: 5000 }, (_, k) => 1 + k / 1000));
    const svg = renderSvg(report);
    const group = /<g class="series" data-phase="warm-command.agent"[^>]*>([\s\S]*?)<\/g>/.exec(svg)![1]!;
    expect([...group.matchAll(/<circle /g)].length).toBeLessThanOrEqual(1000);
    expect(xmlProblems(svg)).toEqual([]);
  });
});

test("log ticks cover the range with 1-2-5 steps", () => {
  expect(logTicks(0.1, 10)).toEqual([0.1, 0.2, 0.5, 1, 2, 5, 10]);
  expect(logTicks(100, 1000)).toEqual([100, 200, 500, 1000]);
});

test("xmlEscape escapes the five XML specials", () => {
  expect(xmlEscape(`<a b="c" d='e'>&`)).toBe("&lt;a b=&quot;c&quot; d=&apos;e&apos;&gt;&amp;");
});

test("the XML checker itself catches broken markup", () => {
  expect(xmlProblems("<svg><g></svg>")).not.toEqual([]);
  expect(xmlProblems("<svg>a & b</svg>")).not.toEqual([]);
  expect(xmlProblems('<svg a="1" a="2"/>')).not.toEqual([]);
  expect(xmlProblems("<svg/><svg/>")).not.toEqual([]);
  expect(xmlProblems('<svg a="&amp;">&lt;</svg>')).toEqual([]);
});
