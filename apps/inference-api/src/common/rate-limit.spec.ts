import { describe, expect, it } from 'vitest';
import type { RedisConnection } from '../cache/redis-connection.js';
import { RateLimiter } from './rate-limit.js';

describe('RateLimiter (in memory)', () => {
  it('counts per client in one-minute windows aligned on the clock', async () => {
    let now = 120_000 + 59_000; // one second before a window ends
    const limiter = new RateLimiter(2, undefined, () => now);
    expect(await limiter.hit('a')).toEqual({ count: 1, resetAt: 180_000 });
    expect((await limiter.hit('a')).count).toBe(2);
    expect((await limiter.hit('a')).count).toBe(3);
    expect((await limiter.hit('b')).count).toBe(1);
    now = 180_000;
    expect(await limiter.hit('a')).toEqual({ count: 1, resetAt: 240_000 });
  });

  it('counts locally while Redis is unavailable or failing (fail open, never blocks)', async () => {
    const down = { available: false } as unknown as RedisConnection;
    const limiter = new RateLimiter(1, down, () => 0);
    expect((await limiter.hit('a')).count).toBe(1);
    const failing = { available: true, call: () => Promise.reject(new Error('timeout')) } as unknown as RedisConnection;
    const other = new RateLimiter(1, failing, () => 0);
    expect((await other.hit('a')).count).toBe(1);
    expect((await other.hit('a')).count).toBe(2);
  });
});
