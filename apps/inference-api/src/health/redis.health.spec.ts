import { HealthIndicatorService } from '@nestjs/terminus';
import { describe, expect, it } from 'vitest';
import { type AppConfig, loadAppConfig } from '../config/app-config.js';
import { RedisHealthIndicator, redisTarget } from './redis.health.js';

const config = (env: Record<string, string>): AppConfig => loadAppConfig(env);
const REDIS = { REDIS_URL: 'redis://:secret@10.0.0.7:6380/0', REDIS_TIMEOUT_MS: '50' };

describe('RedisHealthIndicator', () => {
  it('is not part of readiness without REDIS_URL', async () => {
    const indicator = new RedisHealthIndicator(config({}), new HealthIndicatorService(), null);
    expect(indicator.configured).toBe(false);
    expect(await indicator.check()).toEqual({ redis: { status: 'up', configured: false } });
  });

  it('up when the ping answers; the target is shown without credentials', async () => {
    const indicator = new RedisHealthIndicator(config(REDIS), new HealthIndicatorService(), async () => undefined);
    expect(indicator.configured).toBe(true);
    const result = await indicator.check();
    expect(result['redis']).toMatchObject({ status: 'up', target: 'redis://10.0.0.7:6380', required: true });
    expect(JSON.stringify(result)).not.toContain('secret');
  });

  it('down when the ping fails or hangs (required), degraded when Redis is optional', async () => {
    const failing = new RedisHealthIndicator(config(REDIS), new HealthIndicatorService(), async () => {
      throw new Error('ECONNREFUSED');
    });
    expect((await failing.check())['redis']).toMatchObject({ status: 'down', message: 'PING failed: ECONNREFUSED' });

    const hanging = new RedisHealthIndicator(config(REDIS), new HealthIndicatorService(), () => new Promise(() => undefined));
    const started = Date.now();
    expect((await hanging.check())['redis']).toMatchObject({ status: 'down', message: expect.stringContaining('timed out') });
    expect(Date.now() - started).toBeLessThan(1_000);

    const optional = new RedisHealthIndicator(config({ ...REDIS, REDIS_REQUIRED: 'false' }), new HealthIndicatorService(), async () => {
      throw new Error('ECONNREFUSED');
    });
    expect((await optional.check())['redis']).toMatchObject({ status: 'degraded', required: false });
  });

  it('says clearly when REDIS_URL is set but no client provides REDIS_PING', async () => {
    const indicator = new RedisHealthIndicator(config(REDIS), new HealthIndicatorService(), null);
    expect(indicator.configured).toBe(true);
    expect((await indicator.check())['redis']).toMatchObject({ status: 'down', message: expect.stringContaining('REDIS_PING') });
    // With the cache off the app still connects (rate limits, stored responses): part of readiness.
    expect(new RedisHealthIndicator(config({ ...REDIS, CACHE_ENABLED: 'false' }), new HealthIndicatorService(), null).configured).toBe(true);
  });

  it('redisTarget', () => {
    expect(redisTarget('rediss://u:p@cache.internal/2')).toBe('rediss://cache.internal:6379');
  });
});
