import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { createServer } from 'node:net';
import { createClient, type RedisClientType } from '@keyv/redis';
import { abortedError, type GenerationResult, ModelProviderError, type ModelRouter, type StreamPart } from '@infer/model-providers';
import { createCache } from 'cache-manager';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { loadAppConfig } from '../config/app-config.js';
import type { ModelCatalog } from '../models/model-catalog.js';
import { InferenceService, type InferenceJob } from '../openai/inference.service.js';
import type { ChatCompletionBody } from '../openai/openai.schemas.js';
import { type CacheBackend, createCacheBackend } from './cache-backend.js';
import { entryFromResult } from './cache-entry.js';
import { SignalClient } from '../common/client-link.js';
import { ResponseCacheService, type ServedStream, type Upstream } from './response-cache.service.js';

/**
 * The Redis half of the cache against a real redis-server: two ResponseCacheService instances, each
 * with its own connections, stand for two processes (the e2e suites do it with real processes).
 */

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const silent = { log: () => undefined, warn: () => undefined, debug: () => undefined };

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.on('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() => resolve(typeof address === 'object' && address ? address.port : 0));
    });
  });
}

class RedisProcess {
  private child: ChildProcess | undefined;
  constructor(readonly port: number) {}
  get url(): string {
    return `redis://127.0.0.1:${this.port}`;
  }
  async start(): Promise<void> {
    this.child = spawn('redis-server', ['--port', String(this.port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'], { stdio: 'ignore' });
    const probe = createClient({ url: this.url, socket: { reconnectStrategy: 50 } });
    probe.on('error', () => undefined);
    await probe.connect();
    probe.destroy();
  }
  async stop(): Promise<void> {
    const child = this.child;
    this.child = undefined;
    if (!child || child.exitCode !== null) return;
    child.kill('SIGTERM');
    await once(child, 'exit');
  }
}

const inference = new InferenceService(
  { capabilitiesOf: () => undefined } as unknown as ModelRouter,
  { get: (id: string) => ({ id }), resolve: (id: string) => id } as unknown as ModelCatalog,
);
let prompt = 0;
/** A fresh prompt per test, so tests never see each other's entries. */
const uniqueJob = (body: Partial<ChatCompletionBody> = {}): InferenceJob =>
  inference.chatJob({ model: 'm', messages: [{ role: 'user', content: `p${(prompt += 1)}-${Date.now()}` }], temperature: 0, ...body } as ChatCompletionBody);

class FakeUpstream implements Upstream {
  calls = 0;
  latencyMs = 0;
  failWith: Error | undefined;
  readonly words = ['one', ' two', ' three'];
  get text(): string {
    return this.words.join('');
  }
  async generate(signal: AbortSignal): Promise<GenerationResult> {
    this.calls += 1;
    await this.wait(signal);
    if (this.failWith) throw this.failWith;
    return { text: this.text, finishReason: 'stop', usage: { promptTokens: 2, completionTokens: 3 } };
  }
  async *stream(signal: AbortSignal): AsyncIterable<StreamPart> {
    this.calls += 1;
    await this.wait(signal);
    if (this.failWith) throw this.failWith;
    for (const text of this.words) yield { type: 'delta', text };
    yield { type: 'finish', finishReason: 'stop', usage: { promptTokens: 2, completionTokens: 3 } };
  }
  private wait(signal: AbortSignal): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      const onAbort = () => {
        clearTimeout(timer);
        reject(abortedError());
      };
      const timer = setTimeout(() => {
        signal.removeEventListener('abort', onAbort);
        resolve();
      }, this.latencyMs);
      signal.addEventListener('abort', onAbort, { once: true });
    });
  }
}

interface Instance {
  readonly backend: CacheBackend;
  readonly service: ResponseCacheService;
}

async function instance(url: string, env: Record<string, string> = {}): Promise<Instance> {
  const config = loadAppConfig({ REDIS_URL: url, REDIS_TIMEOUT_MS: '200', ...env });
  const backend = await createCacheBackend(config, silent);
  const service = new ResponseCacheService({
    config: config.cache,
    cache: createCache({ stores: [backend.store] }),
    modelTtlSeconds: () => undefined,
    logger: silent,
    redis: backend.redis,
    coalescer: backend.coalescer,
  });
  await backend.redis?.start();
  return { backend, service };
}

async function text(served: ServedStream): Promise<string> {
  let out = '';
  for await (const part of served.parts) if (part.type === 'delta') out += part.text;
  return out;
}

const client = () => new SignalClient(new AbortController().signal);

describe('response cache on Redis', () => {
  let redis: RedisProcess;
  let admin: RedisClientType;
  let a: Instance;
  let b: Instance;
  let upstream: FakeUpstream;
  const instances: Instance[] = [];

  beforeAll(async () => {
    redis = new RedisProcess(await freePort());
    await redis.start();
    admin = createClient({ url: redis.url, socket: { reconnectStrategy: 50 } }) as RedisClientType;
    admin.on('error', () => undefined);
    await admin.connect();
    a = await instance(redis.url);
    b = await instance(redis.url);
    instances.push(a, b);
  });

  afterAll(async () => {
    await Promise.all(instances.map((i) => i.backend.redis?.close()));
    admin?.destroy();
    await redis?.stop();
  });

  beforeEach(() => {
    upstream = new FakeUpstream();
  });

  afterEach(async () => {
    // Let background writes, publishes and lock releases finish.
    await sleep(20);
  });

  /** The lock keys left once they are all gone, or when `ms` have passed. */
  async function lockKeysAfter(ms: number): Promise<string[]> {
    const deadline = Date.now() + ms;
    for (;;) {
      const keys = await admin.keys('infer:lock:*');
      if (keys.length === 0 || Date.now() >= deadline) return keys;
      await sleep(10);
    }
  }

  it('answers the readiness ping', async () => {
    await expect(a.backend.redis!.ping()).resolves.toBeUndefined();
  });

  it('shares entries between processes', async () => {
    const job = uniqueJob();
    expect((await a.service.generate(job, {}, upstream, client())).headers).toEqual({ 'x-cache': 'MISS' });
    // The leader stores, publishes and releases its lock in the background after answering: wait for that.
    expect(await lockKeysAfter(1000)).toEqual([]);
    const hit = await b.service.generate(job, {}, upstream, client());
    expect(hit.headers).toMatchObject({ 'x-cache': 'HIT' });
    expect(hit.result.text).toBe(upstream.text);
    expect(upstream.calls).toBe(1);
    const key = (a.service.plan(job, {}) as { key: string }).key;
    expect(await admin.pTTL(`infer:cache::${key}`)).toBeGreaterThan(50_000);
    // The lock script sees the entry under the same Redis key as the store.
    expect((await b.backend.coalescer!.acquire(key)).result).toBe('cached');
    expect(await admin.exists(`infer:lock:${key}`)).toBe(0);
  });

  it('coalesces identical requests across processes into one upstream call', async () => {
    upstream.latencyMs = 150;
    const job = uniqueJob();
    const streamJob = uniqueJob();
    const results = await Promise.all([
      ...Array.from({ length: 10 }, (_, i) => (i % 2 ? a : b).service.generate(job, {}, upstream, client()).then((r) => r.result.text)),
      ...Array.from({ length: 10 }, (_, i) => (i % 2 ? a : b).service.stream(streamJob, {}, upstream, client()).then(text)),
    ]);
    expect(upstream.calls).toBe(2); // one per job
    expect(new Set(results)).toEqual(new Set([upstream.text]));
    // Leaders store, publish and release their locks after answering: give that up to 1 s (a lock
    // that was not released would stay for its 5 s TTL).
    expect(await lockKeysAfter(1000)).toEqual([]);
  });

  it('a remote follower gets the leader error', async () => {
    upstream.latencyMs = 100;
    upstream.failWith = new ModelProviderError('http://10.0.0.7:8000: upstream said 500', {
      code: 'upstream_error',
      publicMessage: 'The model server returned an error (HTTP 500).',
    });
    const job = uniqueJob();
    const leader = a.service.generate(job, {}, upstream, client());
    await sleep(30);
    const follower = b.service.generate(job, {}, upstream, client());
    await expect(leader).rejects.toBe(upstream.failWith);
    // What the leader's client is told (never the provider's own message, which names the upstream).
    await expect(follower).rejects.toMatchObject({ status: 502, message: 'The model server returned an error (HTTP 500).', code: 'upstream_error' });
    expect(upstream.calls).toBe(1);
  });

  it('when the leader is aborted, a remote follower takes over', async () => {
    upstream.latencyMs = 150;
    const job = uniqueJob();
    const leaderClient = new AbortController();
    const leader = a.service.generate(job, {}, upstream, new SignalClient(leaderClient.signal));
    await sleep(30);
    const follower = b.service.generate(job, {}, upstream, client());
    await sleep(30);
    leaderClient.abort();
    await expect(leader).rejects.toMatchObject({ code: 'aborted' });
    const served = await follower;
    expect(served.result.text).toBe(upstream.text);
    expect(served.headers).toEqual({ 'x-cache': 'MISS' });
    expect(upstream.calls).toBe(2);
  });

  it('a dead leader (lock never released) is taken over once its lock expires', async () => {
    const job = uniqueJob();
    const key = (a.service.plan(job, {}) as { key: string }).key;
    await admin.set(`infer:lock:${key}`, 'crashed', { PX: 300 });
    const started = Date.now();
    const served = await b.service.generate(job, {}, upstream, client());
    expect(served.headers).toEqual({ 'x-cache': 'MISS' });
    expect(Date.now() - started).toBeGreaterThanOrEqual(250);
    expect(Date.now() - started).toBeLessThan(2_000);
  });

  it('a follower stops waiting after COALESCE_WAIT_MS and calls upstream itself', async () => {
    const impatient = await instance(redis.url, { COALESCE_WAIT_MS: '300' });
    instances.push(impatient);
    const job = uniqueJob();
    const key = (a.service.plan(job, {}) as { key: string }).key;
    await admin.set(`infer:lock:${key}`, 'slow-leader', { PX: 60_000 });
    const started = Date.now();
    const served = await impatient.service.generate(job, {}, upstream, client());
    expect(served.result.text).toBe(upstream.text);
    expect(Date.now() - started).toBeGreaterThanOrEqual(290);
    expect(Date.now() - started).toBeLessThan(1_500);
    await admin.del(`infer:lock:${key}`);
  });

  it('max-age refuses an entry that is too old, also on the lock path', async () => {
    const job = uniqueJob();
    const key = (a.service.plan(job, {}) as { key: string }).key;
    const old = entryFromResult({ text: 'old', finishReason: 'stop', usage: { promptTokens: 1, completionTokens: 1 } }, Date.now() - 10_000);
    await a.backend.store.set(key, old, 60_000);
    expect((await b.service.generate(job, {}, upstream, client())).headers).toEqual({ 'x-cache': 'HIT', age: '10' });
    const fresh = await b.service.generate(job, { 'cache-control': 'max-age=5' }, upstream, client());
    expect(fresh.headers).toEqual({ 'x-cache': 'MISS' });
    expect(fresh.result.text).toBe(upstream.text);
  });

  it('treats corrupt data under a key as a miss, then overwrites it', async () => {
    const job = uniqueJob();
    await a.service.generate(job, {}, upstream, client());
    await sleep(20);
    const [redisKey] = await admin.keys('infer:cache::*').then((keys) => keys.filter((k) => k.endsWith((a.service.plan(job, {}) as { key: string }).key)));
    for (const garbage of ['{not json', '"a string"', '{"value":{"v":1,"text":42},"expires":null}', '{"value":null}']) {
      await admin.set(redisKey!, garbage);
      const served = await b.service.generate(job, {}, upstream, client());
      expect(served.headers, garbage).toEqual({ 'x-cache': 'MISS' });
      await sleep(20);
    }
    expect((await b.service.generate(job, {}, upstream, client())).headers).toMatchObject({ 'x-cache': 'HIT' });
  });

  it('keeps serving, bounded, while Redis is stalled (CLIENT PAUSE)', async () => {
    const job = uniqueJob();
    await admin.sendCommand(['CLIENT', 'PAUSE', '1500', 'ALL']);
    const started = Date.now();
    for (let i = 0; i < 5; i += 1) {
      const t0 = Date.now();
      const served = await a.service.generate(job, {}, upstream, client());
      expect(served.result.text).toBe(upstream.text);
      expect(Date.now() - t0).toBeLessThan(600); // at most a read and a lock attempt, 200 ms each
    }
    expect(Date.now() - started).toBeLessThan(1_500);
    await expect(a.backend.redis!.ping()).rejects.toThrow();
    await sleep(1_600);
  });

  it('keeps serving without cache while Redis is down, and resumes by itself', async () => {
    const job = uniqueJob();
    await redis.stop();
    await sleep(50);
    await expect(a.backend.redis!.ping()).rejects.toThrow();
    for (let i = 0; i < 5; i += 1) {
      const t0 = Date.now();
      const served = await (i % 2 ? a : b).service.generate(job, {}, upstream, client());
      expect(served.result.text).toBe(upstream.text);
      expect(served.headers).toEqual({ 'x-cache': 'MISS' });
      expect(Date.now() - t0).toBeLessThan(100);
    }
    const streamed = await text(await a.service.stream(job, {}, upstream, client()));
    expect(streamed).toBe(upstream.text);
    await redis.start();
    const deadline = Date.now() + 5_000;
    while (!(a.backend.redis!.available && b.backend.redis!.available) && Date.now() < deadline) await sleep(50);
    await expect(a.backend.redis!.ping()).resolves.toBeUndefined();
    const calls = upstream.calls;
    await a.service.generate(job, {}, upstream, client());
    await sleep(20);
    expect((await b.service.generate(job, {}, upstream, client())).headers).toMatchObject({ 'x-cache': 'HIT' });
    expect(upstream.calls).toBe(calls + 1);
  });

  it('closes within the timeout even when Redis does not answer', async () => {
    const c = await instance(redis.url);
    await admin.sendCommand(['CLIENT', 'PAUSE', '1000', 'ALL']);
    void c.backend.redis!.ping().catch(() => undefined);
    const started = Date.now();
    await c.backend.redis!.close();
    expect(Date.now() - started).toBeLessThan(600);
    await sleep(1_100);
  });
});
