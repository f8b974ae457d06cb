/**
 * Gathers samples, notes and reasons per phase while a run goes, and turns them into the
 * report's phase list (every phase of the catalogue, in order).
 */
import { PHASES, phaseResult, type Pairs, type PhaseResult } from "./report.ts";
import { summarize } from "./stats.ts";

export class Collector {
  private readonly samples = new Map<string, number[]>();
  private readonly notes = new Map<string, string[]>();
  private readonly extras = new Map<string, Record<string, number | string>>();
  private readonly reasons = new Map<string, string>();
  private readonly pairMap = new Map<string, Array<[number, number]>>();
  readonly warnings: string[] = [];

  constructor(
    private readonly log: (line: string) => void = () => {},
    private readonly signal?: AbortSignal,
  ) {}

  add(id: string, ...values: number[]): void {
    this.check(id);
    const list = this.samples.get(id) ?? [];
    list.push(...values.filter((v) => Number.isFinite(v)));
    this.samples.set(id, list);
  }

  note(id: string, text: string): void {
    this.check(id);
    this.notes.set(id, [...(this.notes.get(id) ?? []), text]);
  }

  extra(id: string, key: string, value: number | string): void {
    this.check(id);
    this.extras.set(id, { ...this.extras.get(id), [key]: value });
  }

  /** Marks phases as not measurable in this run (first reason wins). */
  unavailable(ids: readonly string[], reason: string): void {
    for (const id of ids) {
      this.check(id);
      if (!this.reasons.has(id)) this.reasons.set(id, reason.startsWith("unavailable:") ? reason : `unavailable: ${reason}`);
    }
  }

  /** Records a numerator sample and the floor sample measured right beside it, for a ratio. */
  pair(ratioId: string, numerator: number, denominator: number): void {
    if (!Number.isFinite(numerator) || !Number.isFinite(denominator)) return;
    this.pairMap.set(ratioId, [...(this.pairMap.get(ratioId) ?? []), [numerator, denominator]]);
  }

  pairs(): Pairs[] {
    return [...this.pairMap].map(([ratio, pairs]) => ({ ratio, pairs }));
  }

  /** Whether a phase was marked unavailable (a failed attempt, or no way to measure it). */
  failed(id: string): boolean {
    return this.reasons.has(id);
  }

  /**
   * Runs an optional measurement; a failure marks its phases unavailable with the error's
   * message and becomes a warning instead of ending the run.
   */
  async attempt(ids: readonly string[], body: () => Promise<void>): Promise<void> {
    try {
      await body();
    } catch (thrown) {
      if (this.signal?.aborted) throw thrown;
      const message = thrown instanceof Error ? thrown.message : String(thrown);
      this.unavailable(ids, `failed: ${message}`);
      this.warnings.push(`${ids.join(", ")}: ${message}`);
      this.log(`  failed: ${message}`);
    }
  }

  /** Logs a phase's median so far (for -v). */
  report(id: string): void {
    const stats = summarize(this.samples.get(id) ?? []);
    const unit = PHASES.find((p) => p.id === id)?.unit ?? "";
    if (stats) this.log(`  ${id}: p50 ${stats.p50.toFixed(stats.p50 < 10 ? 2 : 0)} ${unit} (n=${stats.n})`);
  }

  phases(): PhaseResult[] {
    return PHASES.map((p) => {
      const samples = this.samples.get(p.id) ?? [];
      const reason = samples.length > 0 ? undefined : this.reasons.get(p.id);
      return phaseResult(p.id, samples, {
        ...(reason === undefined ? {} : { unavailable: reason }),
        notes: this.notes.get(p.id) ?? [],
        extra: this.extras.get(p.id) ?? {},
      });
    });
  }

  private check(id: string): void {
    if (!PHASES.some((p) => p.id === id)) throw new RangeError(`unknown benchmark phase "${id}"`);
  }
}
