import { type FakeUpstream, startFakeUpstream } from '@infer/model-providers/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type ApiServer, startApiServer } from '../support/api-server.js';
import { fakeModelsYaml } from '../support/load.js';
import { startRedisServer } from '../support/redis-server.js';

interface ErrorBody {
  error: { message: string; type: string; param: string | null; code: string | null };
}

/** Waits, if needed, so that at least `ms` are left in the current clock minute (the limiter's window). */
async function roomInWindow(ms = 5_000): Promise<void> {
  const left = 60_000 - (Date.now() % 60_000);
  if (left < ms) await new Promise((resolve) => setTimeout(resolve, left + 50));
}

function chat(server: ApiServer, key: string, content = 'hello'): Promise<Response> {
  return fetch(`${server.url}/v1/chat/completions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${key}` },
    body: JSON.stringify({ model: 'm', messages: [{ role: 'user', content }], max_tokens: 2 }),
  });
}

/** RATE_LIMIT_RPM against real server processes (and a real redis-server for the shared counters). */
describe('rate limit (RATE_LIMIT_RPM)', () => {
  let upstream: FakeUpstream;

  beforeAll(async () => {
    upstream = await startFakeUpstream({ tokens: 2 });
  });
  afterAll(() => upstream?.close());

  it('per API key, on the inference routes only: OpenAI headers, then a 429 rate_limit_exceeded with retry-after', async () => {
    const server = await startApiServer({
      env: { RATE_LIMIT_RPM: '3', API_KEYS: 'key-a,key-b', CACHE_ENABLED: 'false' },
      modelsYaml: fakeModelsYaml(upstream.url),
    });
    try {
      await roomInWindow();
      const remaining: Array<string | null> = [];
      for (let i = 0; i < 3; i++) {
        const res = await chat(server, 'key-a');
        expect(res.status).toBe(200);
        expect(res.headers.get('x-ratelimit-limit-requests')).toBe('3');
        expect(res.headers.get('x-ratelimit-reset-requests')).toMatch(/^\d+s$/);
        remaining.push(res.headers.get('x-ratelimit-remaining-requests'));
      }
      expect(remaining).toEqual(['2', '1', '0']);
      const before = upstream.requestCount;
      const limited = await chat(server, 'key-a');
      expect(limited.status).toBe(429);
      expect(Number(limited.headers.get('retry-after'))).toBeGreaterThan(0);
      const body = (await limited.json()) as ErrorBody;
      expect(body.error).toMatchObject({ type: 'requests', code: 'rate_limit_exceeded', param: null });
      expect(body.error.message).toMatch(/^Rate limit reached for requests per minute \(RPM\): limit 3, used 3\. Try again in \d+s\.$/);
      expect(upstream.requestCount).toBe(before);
      // Another key has its own budget; other routes and wrong keys are not counted.
      expect((await chat(server, 'key-b')).status).toBe(200);
      expect((await fetch(`${server.url}/v1/models`, { headers: { authorization: 'Bearer key-a' } })).status).toBe(200);
      expect((await fetch(`${server.url}/health/ready`)).status).toBe(200);
      expect((await chat(server, 'wrong')).status).toBe(401);
      const embeddings = await fetch(`${server.url}/v1/embeddings`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', authorization: 'Bearer key-a' },
        body: JSON.stringify({ model: 'm', input: 'x' }),
      });
      expect(embeddings.status).toBe(429);
    } finally {
      await server.stop();
    }
  });

  it('with Redis, every process counts against the same budget', async () => {
    const redis = await startRedisServer();
    const options = { env: { RATE_LIMIT_RPM: '4', REDIS_URL: redis.url, CACHE_ENABLED: 'true' }, modelsYaml: fakeModelsYaml(upstream.url) };
    const keyed = await startApiServer({ ...options, env: { ...options.env, API_KEYS: 'tenant-1' } });
    const [a, b] = await Promise.all([startApiServer(options), startApiServer(options)]);
    try {
      await roomInWindow();
      // Without API_KEYS the client is its address (a made-up key per request must not buy a new budget).
      const statuses: number[] = [];
      for (const server of [a, b, a, b, a, b]) statuses.push((await chat(server, `made-up-${statuses.length}`, `q${statuses.length}`)).status);
      expect(statuses).toEqual([200, 200, 200, 200, 429, 429]);
      expect((await fetch(`${b.url}/predict?input_text=hi`)).status).toBe(429);
      // With API_KEYS the (checked) key is the client: a budget of its own, shared by the processes too.
      const own = await chat(keyed, 'tenant-1');
      expect(own.status).toBe(200);
      expect(own.headers.get('x-ratelimit-remaining-requests')).toBe('3');
    } finally {
      await Promise.all([a.stop(), b.stop(), keyed.stop()]);
      await redis.stop();
    }
  });
});
