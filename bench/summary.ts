/**
 * The human summary of a bench report as rows of cells (the CLI aligns and colours them).
 * Pure.
 */
import type { BenchReport, PhaseResult, Span } from "./report.ts";
import { roundForReport } from "./stats.ts";

export interface Rows {
  header: string[];
  rows: string[][];
}

function num(value: number | undefined | null): string {
  if (value === undefined || value === null || !Number.isFinite(value)) return "-";
  return String(roundForReport(value));
}

function ratioFor(report: BenchReport, phase: PhaseResult): string {
  const ratio = report.ratios.find((r) => r.numerator === phase.id && r.denominator.some((d) => d.startsWith("floor.")));
  if (ratio === undefined) return "";
  const value = ratio.paired?.value ?? ratio.value;
  return value === null ? "-" : `${num(value)}x ${ratio.denominator.join("+")}${ratio.paired ? " (paired)" : ""}`;
}

/** The distinct reasons phases were not measured, numbered in order of first appearance. */
export function unavailableReasons(report: BenchReport): Array<{ reason: string; phases: string[] }> {
  const reasons: Array<{ reason: string; phases: string[] }> = [];
  for (const p of report.phases) {
    if (p.stats !== null || p.unavailable === null) continue;
    const reason = p.unavailable.replace(/^unavailable: /, "");
    const known = reasons.find((r) => r.reason === reason);
    if (known) known.phases.push(p.id);
    else reasons.push({ reason, phases: [p.id] });
  }
  return reasons;
}

function footnote(report: BenchReport, phaseId: string): string {
  const index = unavailableReasons(report).findIndex((r) => r.phases.includes(phaseId));
  return index < 0 ? "unavailable" : `unavailable [${index + 1}]`;
}

export function phaseRows(report: BenchReport): Rows {
  return {
    header: ["PHASE", "N", "P50", "P90", "P99", "UNIT", "VS FLOOR"],
    rows: report.phases.map((p) =>
      p.stats === null
        ? [p.id, "0", "-", "-", "-", p.unit, footnote(report, p.id)]
        : [p.id, String(p.stats.n), num(p.stats.p50), num(p.stats.p90), num(p.stats.p99), p.unit, ratioFor(report, p)],
    ),
  };
}

/** `[1] reason (phases: a, b)` lines for the footnotes of phaseRows and targetRows. */
export function reasonLines(report: BenchReport): string[] {
  return unavailableReasons(report).map((r, i) => `[${i + 1}] ${r.reason} (${r.phases.join(", ")})`);
}

export function ratioRows(report: BenchReport): Rows {
  return {
    header: ["RATIO", "OF MEDIANS", "PAIRED (MEDIAN OF PAIRS)"],
    rows: report.ratios.map((r) => [
      r.label,
      r.value === null ? "-" : `${num(r.value)}x`,
      r.paired === null ? "" : `${num(r.paired.value)}x (n=${r.paired.n})`,
    ]),
  };
}

export function targetVerdict(met: boolean | null): "met" | "missed" | "n/a" {
  return met === null ? "n/a" : met ? "met" : "missed";
}

export function targetRows(report: BenchReport): Rows {
  return {
    header: ["TARGET", "VALUE", "VERDICT"],
    rows: report.targets.map((t) => [
      t.label,
      t.value === null
        ? missingInputs(report, t.inputs)
        : `${num(t.value)}${t.unit === "ms" ? " ms" : "x"}${t.basis === "paired" ? " (paired)" : ""}`,
      targetVerdict(t.met),
    ]),
  };
}

function missingInputs(report: BenchReport, inputs: readonly string[]): string {
  const missing = inputs.filter((id) => report.phases.find((p) => p.id === id)?.stats == null);
  return missing.length === 0 ? "-" : `needs ${missing.map((id) => `${id} (${footnote(report, id)})`).join(", ")}`;
}

export function spanRows(spans: readonly Span[]): Rows {
  return { header: ["SPAN", "MS", "NOTE"], rows: spans.map((s) => [s.name, num(s.ms), s.note]) };
}

export function machineLine(report: BenchReport): string {
  const m = report.machine;
  const load = (l: number[]) => l.map((x) => x.toFixed(2)).join(" ");
  return `${m.cpuModel}, ${m.cores} cores, ${m.memoryMiB} MiB, ${m.os}, Linux ${m.hostKernel}, ${m.qemuVersion} (${m.accel}), ` +
    `${m.runtime}, smolvm ${m.smolvmVersion}; image ${m.image}; load ${load(m.loadAverage.start)} -> ${load(m.loadAverage.end)}`;
}
