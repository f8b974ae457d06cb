/**
 * `smolvm bench --plot FILE`: the latency distributions of a run as one hand-written SVG. Pure:
 * report in, markup out.
 *
 * One row (`<g class="series" data-phase="ID">`) per latency phase that has samples, on a shared
 * logarithmic time axis (latencies here span 0.1 ms pings to multi-second boots). Each row shows
 * every sample as a dot, the 25-75 % box, the median as a bar and the p99 as a tick, so a floor
 * and the phase built on it can be compared by eye.
 */
import type { BenchReport, PhaseResult } from "./report.ts";
import { percentile } from "./stats.ts";

const WIDTH = 1000;
const LEFT = 290;
const RIGHT = 30;
const TOP = 84;
const ROW = 30;
const BOTTOM = 56;
const MAX_DOTS = 1000;

/** Escapes text for XML content and attribute values. */
export function xmlEscape(text: string): string {
  return text.replaceAll("&", "&amp;").replaceAll("<", "&lt;").replaceAll(">", "&gt;").replaceAll('"', "&quot;").replaceAll("'", "&apos;");
}

function colour(phase: PhaseResult): string {
  if (phase.kind === "floor") return "#6b7280";
  if (phase.path === "ssh" || phase.path === "sftp" || phase.path === "scp") return "#d97706";
  if (phase.path === "cli") return "#7c3aed";
  if (phase.path === "agent") return "#2563eb";
  return "#0f766e";
}

/** Decade ticks (1, 10, 100 ms...) and the 2 and 5 between them, inside [lo, hi]. */
export function logTicks(lo: number, hi: number): number[] {
  const ticks: number[] = [];
  for (let exp = Math.floor(Math.log10(lo)); exp <= Math.ceil(Math.log10(hi)); exp++) {
    for (const m of [1, 2, 5]) {
      const t = m * 10 ** exp;
      if (t >= lo && t <= hi) ticks.push(Number(t.toPrecision(1)));
    }
  }
  return ticks;
}

function fmt(ms: number): string {
  if (ms >= 1000) return `${ms / 1000} s`;
  if (ms >= 1) return `${ms} ms`;
  return `${Math.round(ms * 1000)} µs`;
}

function n(x: number): string {
  return (Math.round(x * 10) / 10).toString();
}

/** The phases drawn: latency phases (ms) with at least one positive sample, in report order. */
export function plottedPhases(report: BenchReport): PhaseResult[] {
  return report.phases.filter((p) => p.unit === "ms" && p.samples.some((s) => s > 0));
}

export function renderSvg(report: BenchReport): string {
  const phases = plottedPhases(report);
  const all = phases.flatMap((p) => p.samples.filter((s) => s > 0));
  const lo = all.length ? 10 ** Math.floor(Math.log10(Math.min(...all))) : 0.1;
  const hi = all.length ? 10 ** Math.ceil(Math.log10(Math.max(...all))) : 10_000;
  const plotWidth = WIDTH - LEFT - RIGHT;
  const x = (ms: number) => LEFT + ((Math.log10(ms) - Math.log10(lo)) / (Math.log10(hi) - Math.log10(lo))) * plotWidth;
  const height = TOP + Math.max(1, phases.length) * ROW + BOTTOM;
  const m = report.machine;
  const out: string[] = [];
  out.push(`<?xml version="1.0" encoding="UTF-8"?>`);
  out.push(`<svg xmlns="http://www.w3.org/2000/svg" width="${WIDTH}" height="${height}" viewBox="0 0 ${WIDTH} ${height}" font-family="sans-serif" font-size="12">`);
  out.push(`<title>${xmlEscape(`smolvm bench ${report.startedAt}`)}</title>`);
  out.push(`<rect width="${WIDTH}" height="${height}" fill="#ffffff"/>`);
  out.push(`<text x="12" y="22" font-size="15" font-weight="bold">${xmlEscape(`smolvm bench: latency distributions (log scale), ${report.startedAt}`)}</text>`);
  out.push(`<text x="12" y="42" fill="#374151">${xmlEscape(`${m.cpuModel}, ${m.cores} cores, ${m.memoryMiB} MiB, ${m.accel}; ${m.qemuVersion}; image ${m.image}`)}</text>`);
  out.push(`<text x="12" y="60" fill="#6b7280">${xmlEscape("dots: samples; box: p25-p75; thick bar: p50; tick: p99. Grey: floors, blue: agent, orange: SSH, purple: CLI, green: SDK calls")}</text>`);

  const axisY = TOP + phases.length * ROW + 8;
  out.push(`<g class="axis" stroke="#e5e7eb">`);
  for (const t of logTicks(lo, hi)) {
    out.push(`<line x1="${n(x(t))}" y1="${TOP - 6}" x2="${n(x(t))}" y2="${axisY}"/>`);
  }
  out.push(`</g>`);
  out.push(`<g class="axis-labels" fill="#374151" text-anchor="middle">`);
  // Labels on decades only: 2 and 5 would crowd them.
  for (const t of logTicks(lo, hi).filter((t) => Math.abs(Math.log10(t) - Math.round(Math.log10(t))) < 1e-9)) {
    out.push(`<text x="${n(x(t))}" y="${axisY + 16}">${xmlEscape(fmt(t))}</text>`);
  }
  out.push(`</g>`);

  phases.forEach((phase, row) => {
    const mid = TOP + row * ROW + ROW / 2;
    const positive = phase.samples.filter((s) => s > 0);
    const c = colour(phase);
    const stride = Math.max(1, Math.ceil(positive.length / MAX_DOTS));
    out.push(`<g class="series" data-phase="${xmlEscape(phase.id)}" data-n="${positive.length}">`);
    out.push(`<text x="${LEFT - 10}" y="${n(mid + 4)}" text-anchor="end" fill="${c}">${xmlEscape(`${phase.id} (n=${positive.length})`)}</text>`);
    const p25 = percentile(positive, 25);
    const p50 = percentile(positive, 50);
    const p75 = percentile(positive, 75);
    const p99 = percentile(positive, 99);
    out.push(`<title>${xmlEscape(`${phase.id}: p50 ${fmt(Number(p50.toPrecision(3)))}, p99 ${fmt(Number(p99.toPrecision(3)))}`)}</title>`);
    out.push(`<line x1="${n(x(Math.min(...positive)))}" y1="${mid}" x2="${n(x(Math.max(...positive)))}" y2="${mid}" stroke="${c}" stroke-opacity="0.5"/>`);
    out.push(`<rect x="${n(x(p25))}" y="${mid - 8}" width="${n(Math.max(1, x(p75) - x(p25)))}" height="16" fill="${c}" fill-opacity="0.15" stroke="${c}"/>`);
    for (let i = 0; i < positive.length; i += stride) {
      const jitter = (((i * 0.618034) % 1) - 0.5) * (ROW * 0.5);
      out.push(`<circle cx="${n(x(positive[i]!))}" cy="${n(mid + jitter)}" r="1.8" fill="${c}" fill-opacity="0.45"/>`);
    }
    out.push(`<line x1="${n(x(p50))}" y1="${mid - 10}" x2="${n(x(p50))}" y2="${mid + 10}" stroke="${c}" stroke-width="3"/>`);
    out.push(`<line x1="${n(x(p99))}" y1="${mid - 6}" x2="${n(x(p99))}" y2="${mid + 6}" stroke="${c}" stroke-width="1.5"/>`);
    out.push(`</g>`);
  });
  if (phases.length === 0) out.push(`<text x="${LEFT}" y="${TOP + ROW / 2}">no latency samples in this run</text>`);
  out.push(`</svg>`);
  return `${out.join("\n")}\n`;
}
