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
  return ratio.value === null ? "-" : `${num(ratio.value)}x ${ratio.denominator.join("+")}`;
}

export function phaseRows(report: BenchReport): Rows {
  return {
    header: ["PHASE", "N", "P50", "P90", "P99", "UNIT", "VS FLOOR"],
    rows: report.phases.map((p) =>
      p.stats === null
        ? [p.id, "0", "-", "-", "-", p.unit, p.unavailable ?? "unavailable"]
        : [p.id, String(p.stats.n), num(p.stats.p50), num(p.stats.p90), num(p.stats.p99), p.unit, ratioFor(report, p)],
    ),
  };
}

export function ratioRows(report: BenchReport): Rows {
  return {
    header: ["RATIO (P50)", "VALUE"],
    rows: report.ratios.map((r) => [r.label, r.value === null ? "-" : `${num(r.value)}x`]),
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
      t.value === null ? (t.why ?? "-") : `${num(t.value)}${t.unit === "ms" ? " ms" : "x"}`,
      targetVerdict(t.met),
    ]),
  };
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
