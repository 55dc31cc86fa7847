import { describe, expect, it } from 'vitest';
import { Histogram } from './histogram.js';
import { uncorrect } from './wrk.js';

/** wrk.c's stats_correct(), as wrk 4 applies it before calling the script's done(). */
function statsCorrect(data: Map<number, number>, expected: number): void {
  const max = Math.max(...data.keys());
  for (let n = expected * 2; n <= max; n += 1) {
    const count = data.get(n) ?? 0;
    for (let m = n - expected; count && m > expected; m -= expected) data.set(m, (data.get(m) ?? 0) + count);
  }
}

describe('uncorrect', () => {
  it('exactly undoes wrk 4 coordinated-omission adjustment', () => {
    const original = new Map<number, number>([
      [40, 900],
      [45, 80],
      [130, 15],
      [2_500, 3],
      [25_000, 2],
    ]);
    const requests = [...original.values()].reduce((a, b) => a + b, 0);
    const durationUs = 1_000_000;
    const connections = 1;
    const corrected = new Map(original);
    statsCorrect(corrected, Math.floor(durationUs / Math.floor(requests / connections)));
    const pairs = [...corrected.entries()].flat();
    expect(pairs.length).toBeGreaterThan(original.size * 2);
    expect(uncorrect(pairs, requests, durationUs, connections)).toEqual(original);
  });
});

describe('Histogram', () => {
  it('computes nearest-rank percentiles over merged samples', () => {
    const a = new Histogram();
    for (let i = 1; i <= 50; i += 1) a.add(i);
    const b = new Histogram();
    for (let i = 51; i <= 100; i += 1) b.add(i);
    a.merge(b);
    expect(a.count).toBe(100);
    expect(a.percentile(50)).toBe(50);
    expect(a.percentile(99)).toBe(99);
    expect(a.max).toBe(100);
    expect(a.mean).toBeCloseTo(50.5);
  });
});
