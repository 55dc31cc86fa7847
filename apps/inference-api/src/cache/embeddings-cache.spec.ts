import type { EmbeddingResult, ModelRouter } from '@infer/model-providers';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { SignalClient } from '../common/client-link.js';
import { loadAppConfig } from '../config/app-config.js';
import type { ModelCatalog } from '../models/model-catalog.js';
import { type EmbeddingJob, InferenceService } from '../openai/inference.service.js';
import type { EmbeddingBody } from '../openai/openai.schemas.js';
import { embeddingsCacheKey } from './cache-key.js';
import { planEmbeddings } from './cache-policy.js';
import { createEmbeddingsCache, type EmbeddingsCache, embeddingsEntrySize, parseEmbeddingsEntry } from './embeddings-cache.js';
import type { RedisConnection } from './redis-connection.js';

const inference = new InferenceService(
  { capabilitiesOf: () => ({ chat: true, completion: true, streaming: true, embeddings: true, tools: false }) } as unknown as ModelRouter,
  { get: (id: string) => ({ id }), resolve: (id: string) => id } as unknown as ModelCatalog,
);
const job = (body: Partial<EmbeddingBody> = {}): EmbeddingJob => inference.embeddingJob({ model: 'e', input: ['a', 'b'], ...body } as EmbeddingBody);
const config = (env: Record<string, string> = {}) => loadAppConfig(env);
const logger = () => ({ log: vi.fn(), warn: vi.fn(), debug: vi.fn() });
/** A request's client that stays until `leave()`. */
function clientOf() {
  const controller = new AbortController();
  return { client: new SignalClient(controller.signal), leave: () => controller.abort() };
}
const stays = () => clientOf().client;

/** A provider call that counts itself and answers vectors derived from the inputs. */
function upstreamFor(j: EmbeddingJob) {
  const calls = { n: 0 };
  const call = (): Promise<EmbeddingResult> => {
    calls.n += 1;
    return Promise.resolve({ embeddings: j.request.input.map((text) => [text.length, 0.1 * calls.n]), usage: { promptTokens: 3 * j.request.input.length } });
  };
  return { calls, call };
}

async function memoryCache(env: Record<string, string> = {}, ttl?: number): Promise<EmbeddingsCache> {
  const cache = await createEmbeddingsCache(config(env), null, () => ttl, logger());
  expect(cache).not.toBeNull();
  return cache as EmbeddingsCache;
}

afterEach(() => {
  vi.useRealTimers();
});

describe('embeddings cache policy and key', () => {
  it('is off with the cache off or CACHE_EMBEDDINGS=false; otherwise every request is cacheable', async () => {
    expect(planEmbeddings(job(), {}, config({ CACHE_ENABLED: 'false' }).cache, undefined)).toEqual({ mode: 'off' });
    expect(planEmbeddings(job(), {}, config({ CACHE_EMBEDDINGS: 'false' }).cache, undefined)).toEqual({ mode: 'off' });
    expect(await createEmbeddingsCache(config({ CACHE_EMBEDDINGS: 'false' }), null, () => undefined, logger())).toBeNull();
    expect(planEmbeddings(job(), {}, config().cache, undefined)).toMatchObject({ mode: 'use', ttlMs: 60_000, refresh: false });
    expect(planEmbeddings(job(), {}, config().cache, 600)).toMatchObject({ ttlMs: 600_000 });
  });

  it('honours the cache headers as the response cache does', () => {
    const c = config().cache;
    expect(planEmbeddings(job(), { 'cache-control': 'no-store' }, c, undefined)).toEqual({ mode: 'bypass' });
    expect(planEmbeddings(job(), { 'cache-control': 'no-cache' }, c, undefined)).toMatchObject({ mode: 'use', refresh: true });
    expect(planEmbeddings(job(), { 'cache-control': 'max-age=5' }, c, undefined)).toMatchObject({ maxAgeMs: 5_000 });
    expect(planEmbeddings(job(), { 'x-cache-ttl': '0' }, c, undefined)).toEqual({ mode: 'bypass' });
    expect(planEmbeddings(job(), { 'x-cache-ttl': '30' }, c, undefined)).toMatchObject({ ttlMs: 30_000 });
    expect(() => planEmbeddings(job(), { 'x-cache-ttl': 'soon' }, c, undefined)).toThrow(/x-cache-ttl/);
  });

  it('keys on model, inputs (in order), dimensions and output-changing extras; not on encoding or user', () => {
    const key = (j: EmbeddingJob) => embeddingsCacheKey(j, null);
    const base = key(job());
    expect(key(job({ encoding_format: 'base64' }))).toBe(base);
    expect(key(job({ user: 'u1' } as Partial<EmbeddingBody>))).toBe(base);
    const others = [
      key(job({ input: ['b', 'a'] })),
      key(job({ input: ['a'] })),
      key(job({ model: 'e2' })),
      key(job({ dimensions: 8 })),
      key(job({ input_type: 'query' } as Partial<EmbeddingBody>)),
      embeddingsCacheKey(job(), 'key:k1'),
    ];
    expect(new Set([base, ...others]).size).toBe(others.length + 1);
    // A string input and the one-element array are the same request.
    expect(key(job({ input: 'a' }))).toBe(key(job({ input: ['a'] })));
  });
});

describe('EmbeddingsCache (in memory)', () => {
  it('MISS calls the model and stores; HIT answers the same vectors and usage without calling it', async () => {
    const cache = await memoryCache();
    const j = job();
    const { calls, call } = upstreamFor(j);
    const miss = await cache.embed(j, {}, call, stays());
    expect(miss.headers).toEqual({ 'x-cache': 'MISS' });
    await new Promise((r) => setImmediate(r));
    const hit = await cache.embed(job(), {}, call, stays());
    expect(hit.headers).toEqual({ 'x-cache': 'HIT', age: '0' });
    expect(hit.result).toEqual(miss.result);
    expect(calls.n).toBe(1);
    // no-cache refreshes; no-store bypasses.
    expect((await cache.embed(job(), { 'cache-control': 'no-cache' }, call, stays())).headers).toEqual({ 'x-cache': 'MISS' });
    expect((await cache.embed(job(), { 'cache-control': 'no-store' }, call, stays())).headers).toEqual({ 'x-cache': 'BYPASS' });
    expect(calls.n).toBe(3);
  });

  it('expires entries after their TTL and honours max-age (age in whole seconds)', async () => {
    vi.useFakeTimers({ toFake: ['Date'] });
    const cache = await memoryCache({}, 10);
    const { calls, call } = upstreamFor(job());
    await cache.embed(job(), {}, call, stays());
    // The call stays joinable until its entry is stored (a few ticks).
    await new Promise((r) => setImmediate(r));
    vi.setSystemTime(Date.now() + 4_000);
    expect((await cache.embed(job(), {}, call, stays())).headers).toEqual({ 'x-cache': 'HIT', age: '4' });
    expect((await cache.embed(job(), { 'cache-control': 'max-age=3' }, call, stays())).headers).toEqual({ 'x-cache': 'MISS' });
    vi.setSystemTime(Date.now() + 11_000);
    expect((await cache.embed(job({ input: ['z'] }), {}, call, stays())).headers).toEqual({ 'x-cache': 'MISS' });
    expect(calls.n).toBe(3);
  });

  it('is bounded by bytes: large entries push out the least recently used, and one over the budget is not kept', async () => {
    const wide = (n: number, width: number) => job({ input: Array.from({ length: n }, (_, i) => `t${i}`), dimensions: width });
    const vectorsOf = (j: EmbeddingJob): EmbeddingResult => ({ embeddings: j.request.input.map(() => new Array<number>(j.request.dimensions ?? 4).fill(0.5)), usage: { promptTokens: 1 } });
    const oneEntry = embeddingsEntrySize({ v: 1, embeddings: vectorsOf(wide(4, 100)).embeddings, promptTokens: 1, createdAt: 0 });
    const cache = await memoryCache({ CACHE_EMBEDDINGS_MAX_BYTES: String(Math.floor(oneEntry * 2.5)) });
    const jobs = [wide(4, 100), { ...wide(4, 100), model: 'x' }, { ...wide(4, 100), model: 'y' }] as EmbeddingJob[];
    for (const j of jobs) await cache.embed(j, {}, () => Promise.resolve(vectorsOf(j)), stays());
    await new Promise((r) => setImmediate(r));
    const status = async (j: EmbeddingJob) => (await cache.embed(j, {}, () => Promise.resolve(vectorsOf(j)), stays())).headers?.['x-cache'];
    // Room for two: the last two are there, the first was pushed out (newest first: a miss stores again).
    expect([await status(jobs[2]!), await status(jobs[1]!), await status(jobs[0]!)]).toEqual(['HIT', 'HIT', 'MISS']);
    const huge = wide(8, 200);
    await cache.embed(huge, {}, () => Promise.resolve(vectorsOf(huge)), stays());
    await new Promise((r) => setImmediate(r));
    expect((await cache.embed(huge, {}, () => Promise.resolve(vectorsOf(huge)), stays())).headers).toEqual({ 'x-cache': 'MISS' });
  });
});

/** A model call that waits until `release()` (or `fail()`), recording the signal it was given. */
function heldUpstream(j: EmbeddingJob) {
  const state = { calls: 0, signals: [] as AbortSignal[] };
  const settles: Array<{ resolve: (r: EmbeddingResult) => void; reject: (e: unknown) => void }> = [];
  const call = (signal: AbortSignal): Promise<EmbeddingResult> => {
    state.calls += 1;
    state.signals.push(signal);
    return new Promise<EmbeddingResult>((resolve, reject) => {
      settles.push({ resolve, reject });
      signal.addEventListener('abort', () => reject(new Error('aborted by the cache')), { once: true });
    });
  };
  const release = () => {
    for (const s of settles.splice(0)) s.resolve({ embeddings: j.request.input.map((t) => [t.length, 0.5]), usage: { promptTokens: 7 } });
  };
  const fail = (error: unknown) => {
    for (const s of settles.splice(0)) s.reject(error);
  };
  return { state, call, release, fail };
}

describe('EmbeddingsCache single-flight (in this process)', () => {
  it('identical concurrent requests share one model call: the first is a MISS, the others HIT with age 0', async () => {
    const cache = await memoryCache();
    const up = heldUpstream(job());
    const pending = [0, 1, 2, 3].map(() => cache.embed(job(), {}, up.call, stays()));
    await new Promise((r) => setImmediate(r));
    expect(up.state.calls).toBe(1);
    expect(cache.inFlight).toBe(1);
    up.release();
    const served = await Promise.all(pending);
    expect(served.map((s) => s.headers)).toEqual([{ 'x-cache': 'MISS' }, ...Array(3).fill({ 'x-cache': 'HIT', age: '0' })]);
    for (const s of served) expect(s.result).toEqual(served[0]!.result);
    expect(cache.stats).toMatchObject({ misses: 1, coalesced: 3, hits: 0 });
    await new Promise((r) => setImmediate(r));
    expect(cache.inFlight).toBe(0);
    // Stored: the next one is a HIT from the store, still one call.
    expect((await cache.embed(job(), {}, up.call, stays())).headers).toEqual({ 'x-cache': 'HIT', age: '0' });
    expect(up.state.calls).toBe(1);
  });

  it('the first client leaving does not abort the call while another request waits on it', async () => {
    const cache = await memoryCache();
    const up = heldUpstream(job());
    const first = clientOf();
    const leader = cache.embed(job(), {}, up.call, first.client);
    const joined = cache.embed(job(), {}, up.call, stays());
    await new Promise((r) => setImmediate(r));
    first.leave();
    await expect(leader).rejects.toMatchObject({ code: 'aborted' });
    expect(up.state.signals[0]!.aborted).toBe(false);
    up.release();
    expect((await joined).headers).toEqual({ 'x-cache': 'HIT', age: '0' });
    expect(up.state.calls).toBe(1);
  });

  it('the call is aborted once every request waiting on it is gone, and is not joined or stored after that', async () => {
    const cache = await memoryCache();
    const up = heldUpstream(job());
    const a = clientOf();
    const b = clientOf();
    const pa = cache.embed(job(), {}, up.call, a.client);
    const pb = cache.embed(job(), {}, up.call, b.client);
    await new Promise((r) => setImmediate(r));
    a.leave();
    b.leave();
    await expect(pa).rejects.toMatchObject({ code: 'aborted' });
    await expect(pb).rejects.toMatchObject({ code: 'aborted' });
    expect(up.state.signals[0]!.aborted).toBe(true);
    expect(cache.inFlight).toBe(0);
    // A new request makes a new call.
    const again = cache.embed(job(), {}, up.call, stays());
    await new Promise((r) => setImmediate(r));
    expect(up.state.calls).toBe(2);
    up.release();
    expect((await again).headers).toEqual({ 'x-cache': 'MISS' });
  });

  it("a failed call fails every request waiting on it, stores nothing, and the next request calls again", async () => {
    const cache = await memoryCache();
    const up = heldUpstream(job());
    const pending = [cache.embed(job(), {}, up.call, stays()), cache.embed(job(), {}, up.call, stays())];
    await new Promise((r) => setImmediate(r));
    const boom = new Error('upstream down');
    up.fail(boom);
    for (const p of pending) await expect(p).rejects.toBe(boom);
    await new Promise((r) => setImmediate(r));
    expect(cache.inFlight).toBe(0);
    const next = cache.embed(job(), {}, up.call, stays());
    await new Promise((r) => setImmediate(r));
    expect(up.state.calls).toBe(2);
    up.release();
    expect((await next).headers).toEqual({ 'x-cache': 'MISS' });
  });

  it('a no-cache request does not join the call in flight; other inputs never do', async () => {
    const cache = await memoryCache();
    const up = heldUpstream(job());
    const other = heldUpstream(job({ input: ['c'] }));
    const pending = [cache.embed(job(), {}, up.call, stays())];
    await new Promise((r) => setImmediate(r));
    pending.push(cache.embed(job(), { 'cache-control': 'no-cache' }, up.call, stays()), cache.embed(job({ input: ['c'] }), {}, other.call, stays()));
    await new Promise((r) => setImmediate(r));
    expect(up.state.calls).toBe(2);
    expect(other.state.calls).toBe(1);
    up.release();
    other.release();
    await Promise.all(pending);
  });
});

describe('EmbeddingsCache on Redis that is unavailable', () => {
  it('misses and answers from the model, without an error', async () => {
    const redis = { available: false, call: () => Promise.reject(new Error('Redis is unavailable')) } as unknown as RedisConnection;
    const cache = await createEmbeddingsCache(config({ REDIS_URL: 'redis://127.0.0.1:1' }), redis, () => undefined, logger());
    const { calls, call } = upstreamFor(job());
    expect((await cache!.embed(job(), {}, call, stays())).headers).toEqual({ 'x-cache': 'MISS' });
    // Once the store has been tried (and failed), the next identical request calls the model again.
    await new Promise((r) => setImmediate(r));
    expect(cache!.inFlight).toBe(0);
    expect((await cache!.embed(job(), {}, call, stays())).headers).toEqual({ 'x-cache': 'MISS' });
    expect(calls.n).toBe(2);
    expect(cache!.description).toContain('on Redis');
  });
});

describe('parseEmbeddingsEntry', () => {
  it('accepts one vector of numbers per input, all of one width; refuses the rest', () => {
    const ok = { v: 1, embeddings: [[1, 2], [3, 4]], promptTokens: 2, createdAt: 1 };
    expect(parseEmbeddingsEntry(ok, 2)).toEqual(ok);
    for (const [raw, inputs] of [
      [ok, 3],
      [{ ...ok, v: 2 }, 2],
      [{ ...ok, embeddings: [[1, 2], [3]] }, 2],
      [{ ...ok, embeddings: [[1, '2'], [3, 4]] }, 2],
      [{ ...ok, promptTokens: '2' }, 2],
      ['x', 1],
      [null, 1],
    ] as Array<[unknown, number]>) {
      expect(parseEmbeddingsEntry(raw, inputs), JSON.stringify(raw)).toBeUndefined();
    }
  });
});
