/**
 * Ratios between phases and the project's performance targets, computed from a run's phase
 * results. Pure: the same results always give the same verdicts, so the verdicts are tested
 * without timing anything.
 *
 * Every ratio compares medians (p50) measured in the same run. Ratios are oriented so that the
 * reader knows which way is good: `ours / floor` is 1 at best and grows with overhead;
 * `SSH / agent` (latency) and `agent / SSH` (throughput) say how many times the agent wins.
 * Where the run measured a phase and its floor side by side (a floor boot right before each
 * create, a raw channel run right after each agent transfer), the ratio also has a paired
 * value, the median of the per-pair ratios, and the targets judge by that one: the load of a
 * shared machine drifts over minutes, and a pair shares its moment.
 */
import { p50Of, type Pairs, type PhaseResult, type Ratio, type Target } from "./report.ts";
import { percentile } from "./stats.ts";

interface RatioDef {
  id: string;
  label: string;
  numerator: string;
  denominator: string[];
}

export const RATIOS: readonly RatioDef[] = [
  { id: "create/boot-floor", label: "create / boot floor", numerator: "create", denominator: ["floor.boot"] },
  { id: "create-to-first-command/boot-floor", label: "create -> first command (agent) / boot floor", numerator: "create-to-first-command.agent", denominator: ["floor.boot"] },
  { id: "create-to-first-command-warm/boot-floor", label: "warm create -> first command / boot floor", numerator: "create-to-first-command.warm", denominator: ["floor.boot"] },
  { id: "warm/cold-create-to-first-command", label: "create -> first command: warm / cold", numerator: "create-to-first-command.warm", denominator: ["create-to-first-command.agent"] },
  { id: "launch/boot-floor", label: "launch / boot floor", numerator: "launch", denominator: ["floor.boot"] },
  { id: "create-to-first-command-ssh/boot-floor", label: "create -> first command (SSH) / boot floor", numerator: "create-to-first-command.ssh", denominator: ["floor.boot"] },
  { id: "warm-agent/ping+fork-exec", label: "warm command (agent) / (ping + guest fork/exec)", numerator: "warm-command.agent", denominator: ["floor.ping", "floor.fork-exec"] },
  { id: "warm-ssh/warm-agent", label: "warm command: SSH / agent", numerator: "warm-command.ssh", denominator: ["warm-command.agent"] },
  { id: "first-ssh/first-agent", label: "first command: SSH / agent", numerator: "first-command.ssh", denominator: ["first-command.agent"] },
  { id: "cli-help/runtime", label: "smolvm --help / bare runtime start", numerator: "cli.help", denominator: ["floor.runtime"] },
  { id: "warm-cli/warm-agent", label: "warm command: CLI process / SDK (agent)", numerator: "warm-command.cli", denominator: ["warm-command.agent"] },
  { id: "upload-agent/channel", label: "upload: agent / raw channel", numerator: "upload.agent", denominator: ["floor.channel-upload"] },
  { id: "download-agent/channel", label: "download: agent / raw channel", numerator: "download.agent", denominator: ["floor.channel-download"] },
  { id: "dir-upload/channel", label: "directory upload: uploadDir / tar over raw channel", numerator: "file.upload.dir", denominator: ["floor.dir-upload"] },
  { id: "preset-start/boot-floor", label: "claude start (image cached) -> --version / boot floor", numerator: "preset.start.cached", denominator: ["floor.boot"] },
  { id: "preset-start-cold/boot-floor", label: "claude start (image cached, booted) -> --version / boot floor", numerator: "preset.start.cold", denominator: ["floor.boot"] },
  { id: "upload-agent/sftp", label: "upload: agent / SFTP", numerator: "upload.agent", denominator: ["upload.sftp"] },
  { id: "download-agent/sftp", label: "download: agent / SFTP", numerator: "download.agent", denominator: ["download.sftp"] },
  { id: "upload-agent/scp", label: "upload: agent / scp", numerator: "upload.agent", denominator: ["upload.scp"] },
  { id: "download-agent/scp", label: "download: agent / scp", numerator: "download.agent", denominator: ["download.scp"] },
  { id: "image-pull/curl+zstd", label: "image pull / (curl + zstd -d)", numerator: "image.pull", denominator: ["floor.curl", "floor.zstd"] },
  { id: "create-published/create-local", label: "create: published images / local builds", numerator: "create.published", denominator: ["create.local"] },
  { id: "net-download-user/host", label: "download: guest on the user network / host", numerator: "net.download.user", denominator: ["floor.net.download"] },
  { id: "net-download-tap/host", label: "download: guest on TAP / host", numerator: "net.download.tap", denominator: ["floor.net.download"] },
  { id: "net-create-user/none", label: "create: user network / no network", numerator: "net.create.user", denominator: ["net.create.none"] },
  { id: "net-create-tap/none", label: "create: TAP network / no network", numerator: "net.create.tap", denominator: ["net.create.none"] },
];

/** p50(numerator) / sum of p50(denominators); null when any of them has no samples or the sum is 0. */
export function ratioValue(phases: readonly PhaseResult[], numerator: string, denominator: readonly string[]): number | null {
  const top = p50Of(phases, numerator);
  const parts = denominator.map((id) => p50Of(phases, id));
  if (top === undefined || parts.some((p) => p === undefined)) return null;
  const bottom = (parts as number[]).reduce((sum, p) => sum + p, 0);
  return bottom > 0 ? top / bottom : null;
}

/** The median of numerator/denominator over the pairs recorded for a ratio; null without any. */
export function pairedValue(pairs: readonly Pairs[], ratioId: string): { value: number; n: number } | null {
  const ratios = (pairs.find((p) => p.ratio === ratioId)?.pairs ?? []).filter(([, d]) => d > 0).map(([n, d]) => n / d);
  return ratios.length === 0 ? null : { value: percentile(ratios, 50), n: ratios.length };
}

export function computeRatios(phases: readonly PhaseResult[], pairs: readonly Pairs[] = []): Ratio[] {
  return RATIOS.map((r) => ({
    ...r,
    denominator: [...r.denominator],
    value: ratioValue(phases, r.numerator, r.denominator),
    paired: pairedValue(pairs, r.id),
  }));
}

interface TargetDef {
  id: string;
  label: string;
  unit: "x" | "ms";
  comparison: "<=" | ">=";
  limit: number;
  /** The phases the value needs. */
  inputs: string[];
  /**
   * A ratio of RATIOS (paired when the run has pairs for it); else, with `difference`, the p50 of
   * the first input less those of the rest; else the sum of the inputs' p50s.
   */
  ratio?: string;
  difference?: true;
  /** With `difference`: the pairs (recorded under this ratio's id) that judge it when the run has them. */
  pairedAs?: string;
}

function sumOfP50(phases: readonly PhaseResult[], ids: readonly string[], sign: (index: number) => number = () => 1): number | null {
  const values = ids.map((id) => p50Of(phases, id));
  return values.some((v) => v === undefined) ? null : (values as number[]).reduce((a, b, i) => a + sign(i) * b, 0);
}

/** A target that holds a ratio of RATIOS to a limit: it needs the phases that ratio reads. */
function onRatio(target: Pick<TargetDef, "id" | "label" | "comparison" | "limit"> & { ratio: string }): TargetDef {
  const def = RATIOS.find((r) => r.id === target.ratio);
  if (def === undefined) throw new Error(`Cannot define target "${target.id}": there is no ratio "${target.ratio}"`);
  return { ...target, unit: "x", inputs: [def.numerator, ...def.denominator] };
}

/** The targets of the project's performance promise (see docs/benchmarks.md). */
export const TARGETS: readonly TargetDef[] = [
  onRatio({ id: "create-to-first-command", ratio: "create-to-first-command/boot-floor", comparison: "<=", limit: 1.15, label: "create -> first command <= 1.15 x boot floor" }),
  onRatio({ id: "warm-command-floor", ratio: "warm-agent/ping+fork-exec", comparison: "<=", limit: 3, label: "warm agent command p50 <= 3 x (ping + guest fork/exec)" }),
  onRatio({ id: "warm-command-vs-ssh", ratio: "warm-ssh/warm-agent", comparison: ">=", limit: 10, label: "warm agent command >= 10 x faster than SSH" }),
  onRatio({ id: "cli-help", ratio: "cli-help/runtime", comparison: "<=", limit: 1.3, label: "smolvm --help <= 1.3 x a bare runtime start" }),
  { id: "stop-delete", label: "stop + delete, caller-visible, <= 50 ms", unit: "ms", comparison: "<=", limit: 50, inputs: ["stop", "delete"] },
  // What a new process costs a command beyond the command itself (#12): start, SDK, store, connection.
  {
    id: "cli-exec", label: "`smolvm exec NAME -- true` process <= SDK warm command + 15 ms", unit: "ms", comparison: "<=", limit: 15,
    inputs: ["warm-command.cli", "warm-command.agent"], difference: true, pairedAs: "warm-cli/warm-agent",
  },
  onRatio({ id: "upload-vs-channel", ratio: "upload-agent/channel", comparison: ">=", limit: 0.5, label: "agent upload >= 50% of raw channel throughput" }),
  onRatio({ id: "dir-upload-vs-channel", ratio: "dir-upload/channel", comparison: ">=", limit: 0.5, label: "directory upload >= 50% of tar over the raw channel" }),
  onRatio({ id: "preset-start", ratio: "preset-start/boot-floor", comparison: "<=", limit: 1.5, label: "claude start (image cached) to --version <= 1.5 x boot floor" }),
  onRatio({ id: "download-vs-channel", ratio: "download-agent/channel", comparison: ">=", limit: 0.5, label: "agent download >= 50% of raw channel throughput" }),
  onRatio({ id: "image-pull", ratio: "image-pull/curl+zstd", comparison: "<=", limit: 1.3, label: "image pull <= 1.3 x (curl + zstd -d of the same files)" }),
  // "No slower", with the noise of a boot under emulation (a tenth) allowed for.
  onRatio({ id: "create-published", ratio: "create-published/create-local", comparison: "<=", limit: 1.1, label: "create from published images <= 1.1 x create from local builds" }),
  onRatio({ id: "net-download-user", ratio: "net-download-user/host", comparison: ">=", limit: 0.5, label: "guest download on the user network >= 50% of the host's" }),
  onRatio({ id: "net-download-tap", ratio: "net-download-tap/host", comparison: ">=", limit: 0.5, label: "guest download on TAP >= 50% of the host's" }),
  onRatio({ id: "warm-create-to-first-command", ratio: "create-to-first-command-warm/boot-floor", comparison: "<=", limit: 0.3, label: "warm create -> first command <= 0.3 x boot floor (moonshot)" }),
];

/** The median of numerator - denominator over the pairs recorded under `ratioId`; null without any. */
export function pairedDifference(pairs: readonly Pairs[], ratioId: string): number | null {
  const differences = (pairs.find((p) => p.ratio === ratioId)?.pairs ?? []).map(([n, d]) => n - d);
  return differences.length === 0 ? null : percentile(differences, 50);
}

/** Met, missed, or (null) not measurable with the reason, for every target. */
export function evaluateTargets(phases: readonly PhaseResult[], pairs: readonly Pairs[] = []): Target[] {
  return TARGETS.map((t) => {
    const def = t.ratio === undefined ? undefined : RATIOS.find((r) => r.id === t.ratio);
    const paired = t.ratio !== undefined ? pairedValue(pairs, t.ratio)?.value ?? null
      : t.pairedAs !== undefined ? pairedDifference(pairs, t.pairedAs) : null;
    const basis: Target["basis"] = paired !== null ? "paired" : def !== undefined ? "p50" : t.difference ? "difference" : "sum";
    const value = paired ?? (def !== undefined ? ratioValue(phases, def.numerator, def.denominator)
      : sumOfP50(phases, t.inputs, t.difference ? (i) => (i === 0 ? 1 : -1) : undefined));
    let why: string | null = null;
    if (value === null) {
      const missing = t.inputs.map((id) => phases.find((p) => p.id === id)).filter((p) => p?.stats == null);
      why = missing.length === 0
        ? "unavailable: a denominator was zero"
        : `unavailable: ${missing.map((p) => `${p?.id ?? "?"} (${p?.unavailable?.replace(/^unavailable: /, "") ?? "not in the report"})`).join("; ")}`;
    }
    const met = value === null ? null : t.comparison === "<=" ? value <= t.limit : value >= t.limit;
    return { id: t.id, label: t.label, unit: t.unit, comparison: t.comparison, limit: t.limit, inputs: [...t.inputs], value, basis, met, why };
  });
}
