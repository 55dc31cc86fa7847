import { type FakeUpstream, startFakeUpstream } from '@infer/model-providers/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type ApiServer, startApiServer } from '../support/api-server.js';
import { fakeModelsYaml, sleep } from '../support/load.js';
import { type RedisServer, startRedisServer } from '../support/redis-server.js';

interface HealthBody {
  status: string;
  details: Record<string, { status: string; message?: string }>;
}

async function health(url: string): Promise<{ status: number; body: HealthBody }> {
  const res = await fetch(url, { signal: AbortSignal.timeout(5_000) });
  return { status: res.status, body: (await res.json()) as HealthBody };
}

async function until(what: string, check: () => Promise<boolean>, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`${what}: not within ${timeoutMs} ms`);
    await sleep(100);
  }
}

/**
 * Readiness follows Redis (a PING on the cache's own client, REDIS_PING), liveness does not.
 * Needs the response cache's Redis client to provide REDIS_PING; while nothing provides it,
 * readiness says so in `details.redis.message` and these tests skip themselves.
 */
describe('readiness and Redis', () => {
  let upstream: FakeUpstream;
  let redis: RedisServer;
  let required: ApiServer;
  let optional: ApiServer;

  beforeAll(async () => {
    upstream = await startFakeUpstream({ recordLimit: 10 });
    redis = await startRedisServer();
    const env = { REDIS_URL: redis.url, REDIS_TIMEOUT_MS: '300', CACHE_ENABLED: 'true' };
    [required, optional] = await Promise.all([
      startApiServer({ env: { ...env, REDIS_REQUIRED: 'true' }, modelsYaml: fakeModelsYaml(upstream.url) }),
      startApiServer({ env: { ...env, REDIS_REQUIRED: 'false' }, modelsYaml: fakeModelsYaml(upstream.url) }),
    ]);
  });

  afterAll(async () => {
    await Promise.all([required?.stop(), optional?.stop()]);
    await redis?.stop();
    await upstream?.close();
  });

  it('503 while a required Redis is down, 200 again once it is back; liveness stays 200', async () => {
    const first = await health(`${required.url}/health/ready`);
    expect(first.status).toBe(200);
    expect(first.body.details['redis']?.status).toBe('up');

    await redis.stop();
    await until('readiness 503 after Redis stopped', async () => (await health(`${required.url}/health/ready`)).status === 503, 5_000);
    const down = await health(`${required.url}/health/ready`);
    expect(down.body.status).toBe('error');
    expect(down.body.details['redis']?.status).toBe('down');
    // The providers are fine: only Redis is down.
    expect(down.body.details['m#0']?.status).toBe('up');
    const live = await health(`${required.url}/health/live`);
    expect(live.status).toBe(200);
    // Optional Redis: degraded, still ready.
    const degraded = await health(`${optional.url}/health/ready`);
    expect(degraded.status).toBe(200);
    expect(degraded.body.status).toBe('degraded');
    expect(degraded.body.details['redis']?.status).toBe('degraded');

    await redis.restart();
    await until('readiness 200 after Redis restarted', async () => (await health(`${required.url}/health/ready`)).status === 200, 15_000);
    expect((await health(`${required.url}/health/live`)).status).toBe(200);
    // Each process reconnects on its own backoff (up to 2 s): wait for the optional one too.
    await until('optional instance ok again', async () => (await health(`${optional.url}/health/ready`)).body.status === 'ok', 15_000);
  });
});
