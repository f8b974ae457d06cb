/**
 * Summary statistics of benchmark samples. Pure.
 *
 * Percentiles interpolate linearly between the two nearest ranks (the common "type 7"
 * definition, as numpy and most spreadsheets compute it), so p50 of an even count is the mean
 * of the middle two and p99 of 200 samples sits between the 198th and 199th smallest.
 */

export interface Stats {
  n: number;
  min: number;
  mean: number;
  p50: number;
  p90: number;
  p99: number;
  max: number;
}

/** The p-th percentile (0..100) of samples already sorted ascending; NaN for none. */
export function percentileSorted(sorted: readonly number[], p: number): number {
  if (!(p >= 0 && p <= 100)) throw new RangeError(`percentile must be between 0 and 100, got ${p}`);
  if (sorted.length === 0) return Number.NaN;
  const rank = (p / 100) * (sorted.length - 1);
  const low = Math.floor(rank);
  const high = Math.ceil(rank);
  const a = sorted[low]!;
  const b = sorted[high]!;
  return a + (b - a) * (rank - low);
}

/** The p-th percentile (0..100) of samples in any order. */
export function percentile(samples: readonly number[], p: number): number {
  return percentileSorted([...samples].sort((x, y) => x - y), p);
}

/** Count, extremes, mean and p50/p90/p99; null when there are no finite samples. */
export function summarize(samples: readonly number[]): Stats | null {
  const sorted = samples.filter((x) => Number.isFinite(x)).sort((x, y) => x - y);
  if (sorted.length === 0) return null;
  return {
    n: sorted.length,
    min: sorted[0]!,
    mean: sorted.reduce((sum, x) => sum + x, 0) / sorted.length,
    p50: percentileSorted(sorted, 50),
    p90: percentileSorted(sorted, 90),
    p99: percentileSorted(sorted, 99),
    max: sorted[sorted.length - 1]!,
  };
}

/** Rounds for reports: 3 significant digits below 10, 1 decimal below 1000, else whole. */
export function roundForReport(value: number): number {
  if (!Number.isFinite(value)) return value;
  const magnitude = Math.abs(value);
  if (magnitude >= 1000) return Math.round(value);
  if (magnitude >= 10) return Math.round(value * 10) / 10;
  return Number(value.toPrecision(3));
}
