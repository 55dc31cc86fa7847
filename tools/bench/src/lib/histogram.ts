/**
 * A latency histogram with 1 µs buckets (what wrk records), mergeable across slices so that the
 * percentiles of a target are those of all its requests, not an average of per-slice percentiles.
 */
export class Histogram {
  private readonly buckets = new Map<number, number>();
  private total = 0;
  private sum = 0;

  /** Adds `count` samples of `micros` (rounded to whole µs). */
  add(micros: number, count = 1): void {
    if (!(count > 0) || !Number.isFinite(micros)) return;
    const bucket = Math.max(0, Math.round(micros));
    this.buckets.set(bucket, (this.buckets.get(bucket) ?? 0) + count);
    this.total += count;
    this.sum += bucket * count;
  }

  /** Adds pairs [value, count, value, count, ...] (wrk's dump). */
  addPairs(pairs: readonly number[]): void {
    for (let i = 0; i + 1 < pairs.length; i += 2) this.add(pairs[i]!, pairs[i + 1]!);
  }

  merge(other: Histogram): void {
    for (const [value, count] of other.buckets) this.add(value, count);
  }

  get count(): number {
    return this.total;
  }

  /** Mean in µs (NaN when empty). */
  get mean(): number {
    return this.total === 0 ? Number.NaN : this.sum / this.total;
  }

  /** The smallest value v such that at least p% of the samples are <= v, in µs (NaN when empty). */
  percentile(p: number): number {
    if (this.total === 0) return Number.NaN;
    const rank = Math.max(1, Math.ceil((p / 100) * this.total));
    const values = [...this.buckets.keys()].sort((a, b) => a - b);
    let seen = 0;
    for (const value of values) {
      seen += this.buckets.get(value)!;
      if (seen >= rank) return value;
    }
    return values[values.length - 1]!;
  }

  get max(): number {
    let max = Number.NaN;
    for (const value of this.buckets.keys()) if (!(value <= max)) max = value;
    return max;
  }
}
