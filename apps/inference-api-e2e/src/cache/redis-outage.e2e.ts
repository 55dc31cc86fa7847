import { type FakeUpstream, startFakeUpstream } from '@infer/model-providers/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type ApiServer, startApiServer } from '../support/api-server.js';
import { freePort } from '../support/free-port.js';
import { type RedisServer, startRedisServer } from '../support/redis-server.js';
import { type ChatResponse, TOKENS, cacheModelsYaml, chat, checkChatStream, expectedReply, sleep, uniquePrompt } from './cache-kit.js';

const REDIS_TIMEOUT_MS = 300;
const UPSTREAM_LATENCY_MS = 30;
/** What one request may take at worst while Redis is down or stalled: a read and a lock attempt, each bounded, plus the upstream call and slack for 2 cores. */
const REQUEST_BOUND_MS = 2 * REDIS_TIMEOUT_MS + UPSTREAM_LATENCY_MS + 900;

interface Sample {
  readonly response: ChatResponse;
  readonly prompt: string;
  readonly stream: boolean;
}

/** `workers` clients in a loop until `stop()`: prompts from a small pool (so there are hits), half of them streamed. */
function load(servers: readonly ApiServer[], workers: number) {
  const samples: Sample[] = [];
  const errors: unknown[] = [];
  const pool = Array.from({ length: 6 }, (_, i) => uniquePrompt(`load-${i}`));
  let running = true;
  let n = 0;
  const loops = Array.from({ length: workers }, async (_, w) => {
    while (running) {
      n += 1;
      const prompt = pool[n % pool.length]!;
      const stream = n % 2 === 0;
      try {
        const response = await chat(servers[(n + w) % servers.length]!, prompt, { stream, includeUsage: stream });
        samples.push({ response, prompt, stream });
      } catch (error) {
        errors.push(error);
      }
    }
  });
  return {
    samples,
    errors,
    async stop() {
      running = false;
      await Promise.all(loops);
    },
  };
}

function expectAllGood(samples: readonly Sample[], label: string): void {
  const slowest = Math.max(...samples.map((s) => s.response.ms));
  console.log(`${label}: ${samples.length} requests, slowest ${slowest} ms (bound ${REQUEST_BOUND_MS} ms)`);
  for (const { response, prompt, stream } of samples) {
    expect(response.status, JSON.stringify(response.json)).toBe(200);
    const content = stream ? checkChatStream(response.sse!, true).content : response.content;
    expect(content).toBe(expectedReply(prompt));
    expect(response.ms, `a request took ${response.ms} ms`).toBeLessThan(REQUEST_BOUND_MS);
  }
}

/** Resolves once a fresh prompt is a MISS on `a` and then a HIT on `b` (the shared cache works). */
async function cachingWorks(a: ApiServer, b: ApiServer, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const prompt = uniquePrompt('probe');
    await chat(a, prompt);
    await sleep(20);
    if ((await chat(b, prompt)).xCache === 'HIT') return true;
    await sleep(200);
  }
  return false;
}

/** A dead or stalled Redis never fails or hangs a request; the cache comes back by itself. */
describe('response cache when Redis goes away', () => {
  let upstream: FakeUpstream;
  let redis: RedisServer;
  let a: ApiServer;
  let b: ApiServer;

  beforeAll(async () => {
    upstream = await startFakeUpstream({ tokens: TOKENS, latencyMs: UPSTREAM_LATENCY_MS });
    redis = await startRedisServer();
    const options = { env: { REDIS_URL: redis.url, REDIS_TIMEOUT_MS: String(REDIS_TIMEOUT_MS) }, modelsYaml: cacheModelsYaml(upstream.url) };
    [a, b] = await Promise.all([startApiServer(options), startApiServer(options)]);
  });

  afterAll(async () => {
    await Promise.all([a?.stop(), b?.stop()]);
    await redis?.stop();
    await upstream?.close();
  });

  it('Redis stopped under load: every request succeeds within the bound; restarted: caching resumes by itself', async () => {
    expect(await cachingWorks(a, b, 2_000)).toBe(true);
    const run = load([a, b], 8);
    await sleep(600);
    const beforeStop = run.samples.length;
    const callsBeforeStop = upstream.requestCount;
    await redis.stop();
    await sleep(1_500);
    const whileDown = run.samples.slice(beforeStop);
    const callsWhileDown = upstream.requestCount - callsBeforeStop;
    await redis.restart();
    await sleep(1_500);
    await run.stop();
    expect(run.errors).toEqual([]);
    expect(beforeStop).toBeGreaterThan(5);
    expect(whileDown.length).toBeGreaterThan(10);
    expectAllGood(run.samples, 'Redis stopped and restarted');
    // The 6 prompts were cached before the stop; while Redis was down they went upstream again and
    // again (only identical requests in flight together still shared a call: X-Cache HIT, Age 0).
    expect(callsWhileDown).toBeGreaterThan(12);
    expect(whileDown.filter((s) => s.response.xCache === 'HIT' && s.response.age !== '0')).toEqual([]);
    expect(await cachingWorks(a, b, 5_000)).toBe(true);
    for (const out of [a, b]) expect(out.output()).not.toMatch(/Unhandled|uncaught/i);
  });

  it('Redis stalled (CLIENT PAUSE) under load: every request succeeds within the bound; caching resumes', async () => {
    expect(await cachingWorks(a, b, 2_000)).toBe(true);
    const run = load([a, b], 8);
    await sleep(400);
    expect(await redis.command('CLIENT', 'PAUSE', '2000', 'ALL')).toContain('OK');
    await sleep(2_500);
    await run.stop();
    expect(run.errors).toEqual([]);
    expectAllGood(run.samples, 'Redis stalled');
    expect(await cachingWorks(a, b, 5_000)).toBe(true);
  });

  it('starts, serves and shuts down promptly when Redis was never there', async () => {
    const started = Date.now();
    const lonely = await startApiServer({
      env: { REDIS_URL: `redis://127.0.0.1:${await freePort()}`, REDIS_TIMEOUT_MS: String(REDIS_TIMEOUT_MS) },
      modelsYaml: cacheModelsYaml(upstream.url),
    });
    try {
      expect(Date.now() - started).toBeLessThan(15_000);
      const prompt = uniquePrompt('no-redis');
      for (const expected of ['MISS', 'MISS']) {
        const r = await chat(lonely, prompt);
        expect(r.status).toBe(200);
        expect(r.xCache).toBe(expected);
        expect(r.content).toBe(expectedReply(prompt));
        expect(r.ms).toBeLessThan(REQUEST_BOUND_MS);
      }
    } finally {
      const stopping = Date.now();
      const exit = await lonely.stop();
      expect(Date.now() - stopping).toBeLessThan(5_000);
      expect(exit.signal).not.toBe('SIGKILL');
    }
  });
});
