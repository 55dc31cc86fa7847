import { abortedError, type GenerationResult, ModelProviderError, type ModelRouter, type StreamPart } from '@infer/model-providers';
import { createCache } from 'cache-manager';
import { beforeEach, describe, expect, it } from 'vitest';
import { loadAppConfig } from '../config/app-config.js';
import type { ModelCatalog } from '../models/model-catalog.js';
import { InferenceService, type InferenceJob } from '../openai/inference.service.js';
import type { ChatCompletionBody } from '../openai/openai.schemas.js';
import { type CacheEntry, entryFromResult } from './cache-entry.js';
import { createMemoryStore } from './cache-stores.js';
import { ResponseClient, SignalClient } from '../common/client-link.js';
import { ResponseCacheService, type ServedStream, type Upstream } from './response-cache.service.js';
import { fakeResponse } from '../common/fake-response.testing.js';

const inference = new InferenceService(
  { capabilitiesOf: () => undefined } as unknown as ModelRouter,
  { get: (id: string) => ({ id }), resolve: (id: string) => id } as unknown as ModelCatalog,
);
const job = (content: string, body: Partial<ChatCompletionBody> = {}): InferenceJob =>
  inference.chatJob({ model: 'm', messages: [{ role: 'user', content }], temperature: 0, ...body } as ChatCompletionBody);


const silent = { log: () => undefined, warn: () => undefined, debug: () => undefined };
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** A scripted upstream: counts calls, answers `words` as deltas after `latencyMs`, can fail or stall. */
class FakeUpstream implements Upstream {
  calls = 0;
  aborted = 0;
  latencyMs = 0;
  interTokenMs = 0;
  failWith: Error | undefined;
  failAfterParts: number | undefined;
  noFinish = false;
  constructor(private readonly words: string[] = ['Hello', ' there', ' friend']) {}

  get text(): string {
    return this.words.join('');
  }

  async generate(signal: AbortSignal): Promise<GenerationResult> {
    this.calls += 1;
    await this.wait(this.latencyMs, signal);
    if (this.failWith) throw this.failWith;
    return { text: this.text, finishReason: 'stop', usage: { promptTokens: 4, completionTokens: this.words.length } };
  }

  async *stream(signal: AbortSignal): AsyncIterable<StreamPart> {
    this.calls += 1;
    await this.wait(this.latencyMs, signal);
    let sent = 0;
    for (const word of this.words) {
      if (this.failAfterParts !== undefined && sent === this.failAfterParts) throw this.failWith ?? new Error('boom');
      await this.wait(this.interTokenMs, signal);
      yield { type: 'delta', text: word };
      sent += 1;
    }
    if (this.failWith && this.failAfterParts === undefined) throw this.failWith;
    if (!this.noFinish) yield { type: 'finish', finishReason: 'stop', usage: { promptTokens: 4, completionTokens: this.words.length } };
  }

  private async wait(ms: number, signal: AbortSignal): Promise<void> {
    if (signal.aborted) {
      this.aborted += 1;
      throw abortedError();
    }
    if (ms <= 0) return;
    await new Promise<void>((resolve, reject) => {
      const onAbort = () => {
        clearTimeout(timer);
        this.aborted += 1;
        reject(abortedError());
      };
      const timer = setTimeout(() => {
        signal.removeEventListener('abort', onAbort);
        resolve();
      }, ms);
      signal.addEventListener('abort', onAbort, { once: true });
    });
  }
}

function makeService(env: Record<string, string> = {}, modelTtl?: number) {
  const config = loadAppConfig(env).cache;
  const keyv = createMemoryStore(config.maxEntries);
  const cache = createCache({ stores: [keyv] });
  const service = new ResponseCacheService({ config, cache, modelTtlSeconds: () => modelTtl, logger: silent });
  return { service, cache, keyv };
}

async function collect(served: ServedStream): Promise<{ text: string; parts: StreamPart[]; headers: Record<string, string> | undefined }> {
  const parts: StreamPart[] = [];
  let headers: Record<string, string> | undefined;
  for await (const part of served.parts) {
    if (!headers) headers = { ...(typeof served.headers === 'function' ? served.headers() : served.headers) };
    parts.push(part);
  }
  return { text: parts.map((p) => (p.type === 'delta' ? p.text : '')).join(''), parts, headers };
}

const client = () => new SignalClient(new AbortController().signal);

describe('ResponseCacheService (memory store)', () => {
  let upstream: FakeUpstream;
  beforeEach(() => {
    upstream = new FakeUpstream();
  });

  it('MISS then HIT, without a second upstream call', async () => {
    const { service } = makeService();
    const first = await service.generate(job('a'), {}, upstream, client());
    expect(first.headers).toEqual({ 'x-cache': 'MISS' });
    const second = await service.generate(job('a'), {}, upstream, client());
    expect(second.headers).toEqual({ 'x-cache': 'HIT', age: '0' });
    expect(second.result).toEqual(first.result);
    expect(upstream.calls).toBe(1);
    await sleep(1);
    expect(service.inFlight).toBe(0);
  });

  it("the MISS answers the upstream's own usage (cached prompt tokens included); entries, and so HITs, keep only what any request may be told", async () => {
    const { service } = makeService();
    const withDetails: Upstream = {
      generate: async () => ({ text: 'hi', finishReason: 'stop', usage: { promptTokens: 40, completionTokens: 1, cachedPromptTokens: 32 } }),
      stream: () => upstream.stream(new AbortController().signal),
    };
    const miss = await service.generate(job('details'), {}, withDetails, client());
    expect(miss.result.usage).toEqual({ promptTokens: 40, completionTokens: 1, cachedPromptTokens: 32 });
    const hit = await service.generate(job('details'), {}, withDetails, client());
    expect(hit.headers?.['x-cache']).toBe('HIT');
    expect(hit.result.usage).toEqual({ promptTokens: 40, completionTokens: 1 });
  });

  it('BYPASS for non-reproducible requests and no-store; off when disabled', async () => {
    const { service } = makeService();
    for (let i = 0; i < 2; i += 1) {
      expect((await service.generate(job('a', { temperature: 0.8 }), {}, upstream, client())).headers).toEqual({ 'x-cache': 'BYPASS' });
    }
    await service.generate(job('b'), {}, upstream, client());
    expect((await service.generate(job('b'), { 'cache-control': 'no-store' }, upstream, client())).headers).toEqual({ 'x-cache': 'BYPASS' });
    expect(upstream.calls).toBe(4);
    const off = makeService({ CACHE_ENABLED: 'false' }).service;
    expect((await off.generate(job('a'), {}, upstream, client())).headers).toBeUndefined();
  });

  it('no-cache skips the lookup and refreshes the entry', async () => {
    const { service, cache } = makeService();
    await service.generate(job('a'), {}, upstream, client());
    const key = (service.plan(job('a'), {}) as { key: string }).key;
    const before = (await cache.get<CacheEntry>(key))!.createdAt;
    await sleep(5);
    const refreshed = await service.generate(job('a'), { 'cache-control': 'no-cache' }, upstream, client());
    expect(refreshed.headers).toEqual({ 'x-cache': 'MISS' });
    expect(upstream.calls).toBe(2);
    expect((await cache.get<CacheEntry>(key))!.createdAt).toBeGreaterThan(before);
  });

  it('max-age refuses entries that are too old', async () => {
    const { service, cache } = makeService();
    const key = (service.plan(job('a'), {}) as { key: string }).key;
    await cache.set(key, entryFromResult({ text: 'old', finishReason: 'stop', usage: { promptTokens: 1, completionTokens: 1 } }, Date.now() - 10_000), 60_000);
    const hit = await service.generate(job('a'), {}, upstream, client());
    expect(hit.headers).toEqual({ 'x-cache': 'HIT', age: '10' });
    const fresh = await service.generate(job('a'), { 'cache-control': 'max-age=5' }, upstream, client());
    expect(fresh.headers).toEqual({ 'x-cache': 'MISS' });
    expect(fresh.result.text).toBe(upstream.text);
  });

  it('expires entries after their TTL (per request here)', async () => {
    const { service } = makeService();
    await service.generate(job('a'), { 'x-cache-ttl': '1' }, upstream, client());
    expect((await service.generate(job('a'), {}, upstream, client())).headers?.['x-cache']).toBe('HIT');
    await sleep(1_050);
    expect((await service.generate(job('a'), {}, upstream, client())).headers?.['x-cache']).toBe('MISS');
    expect(upstream.calls).toBe(2);
  });

  it('stores a stream that ended normally and replays it as a stream or a JSON result', async () => {
    const { service } = makeService();
    const miss = await collect(await service.stream(job('s'), {}, upstream, client()));
    expect(miss.headers).toEqual({ 'x-cache': 'MISS' });
    expect(miss.text).toBe(upstream.text);
    const replay = await collect(await service.stream(job('s'), {}, upstream, client()));
    expect(replay.headers).toMatchObject({ 'x-cache': 'HIT' });
    expect(replay.parts).toEqual(miss.parts); // same chunking, same finish and usage
    const json = await service.generate(job('s'), {}, upstream, client());
    expect(json.result).toEqual({ text: upstream.text, finishReason: 'stop', usage: { promptTokens: 4, completionTokens: 3 } });
    expect(upstream.calls).toBe(1);
  });

  it('serves a stream from an entry made by a JSON request', async () => {
    const { service } = makeService();
    await service.generate(job('j'), {}, upstream, client());
    const replay = await collect(await service.stream(job('j'), {}, upstream, client()));
    expect(replay.headers).toMatchObject({ 'x-cache': 'HIT' });
    expect(replay.parts).toEqual([
      { type: 'delta', text: upstream.text },
      { type: 'finish', finishReason: 'stop', usage: { promptTokens: 4, completionTokens: 3 } },
    ]);
    expect(upstream.calls).toBe(1);
  });

  it('never stores failed, truncated or aborted streams', async () => {
    const { service } = makeService();
    upstream.failWith = new ModelProviderError('reset', { code: 'upstream_unavailable' });
    upstream.failAfterParts = 1;
    await expect(collect(await service.stream(job('f'), {}, upstream, client()))).rejects.toThrow('reset');
    upstream.failWith = undefined;
    upstream.failAfterParts = undefined;
    upstream.noFinish = true;
    await expect(collect(await service.stream(job('f'), {}, upstream, client()))).rejects.toThrow(/without a finish/);
    upstream.noFinish = false;
    upstream.interTokenMs = 20;
    const controller = new AbortController();
    const served = await service.stream(job('f'), {}, upstream, new SignalClient(controller.signal));
    const iterator = served.parts[Symbol.asyncIterator]();
    await iterator.next();
    controller.abort();
    await expect(iterator.next()).rejects.toMatchObject({ code: 'aborted' });
    await sleep(30);
    expect(upstream.aborted).toBe(1); // the last consumer left: upstream call aborted
    upstream.interTokenMs = 0;
    const after = await collect(await service.stream(job('f'), {}, upstream, client()));
    expect(after.headers).toEqual({ 'x-cache': 'MISS' });
    expect(upstream.calls).toBe(4);
  });

  it('coalesces identical concurrent requests into one upstream call (JSON and streams, mixed)', async () => {
    const { service } = makeService();
    upstream.latencyMs = 50;
    upstream.interTokenMs = 5;
    const results = await Promise.all(
      Array.from({ length: 20 }, async (_, i) => {
        if (i % 2 === 0) return (await service.generate(job('c'), {}, upstream, client())).result.text;
        return (await collect(await service.stream(job('c'), {}, upstream, client()))).text;
      }),
    );
    expect(upstream.calls).toBe(1);
    expect(new Set(results)).toEqual(new Set([upstream.text]));
    expect(service.stats.coalesced).toBe(19);
  });

  it('stream followers get the live stream, and a JSON leader serves stream followers', async () => {
    const { service } = makeService();
    upstream.interTokenMs = 20;
    const leader = collect(await service.stream(job('l'), {}, upstream, client()));
    await sleep(30); // the leader already has a part or two
    const follower = collect(await service.stream(job('l'), {}, upstream, client()));
    const [a, b] = await Promise.all([leader, follower]);
    expect(a.headers).toEqual({ 'x-cache': 'MISS' });
    expect(b.headers).toEqual({ 'x-cache': 'HIT', age: '0' });
    expect(b.parts).toEqual(a.parts);

    upstream.latencyMs = 30;
    const jsonLeader = service.generate(job('k'), {}, upstream, client());
    await sleep(5);
    const streamFollower = collect(await service.stream(job('k'), {}, upstream, client()));
    expect((await streamFollower).text).toBe((await jsonLeader).result.text);
    expect(upstream.calls).toBe(2);
  });

  it('a leader failure reaches every follower as the same error, and nothing is stored', async () => {
    const { service } = makeService();
    upstream.latencyMs = 30;
    upstream.failWith = new ModelProviderError('upstream said 500', { code: 'upstream_error' });
    const outcomes = await Promise.allSettled([
      service.generate(job('e'), {}, upstream, client()),
      service.generate(job('e'), {}, upstream, client()),
      service.stream(job('e'), {}, upstream, client()).then(collect),
    ]);
    expect(upstream.calls).toBe(1);
    for (const outcome of outcomes) {
      expect(outcome.status).toBe('rejected');
      expect((outcome as PromiseRejectedResult).reason).toBe(upstream.failWith);
    }
    upstream.failWith = undefined;
    expect((await service.generate(job('e'), {}, upstream, client())).headers).toEqual({ 'x-cache': 'MISS' });
  });

  it('the leader client leaving does not break its followers: the call goes on and is stored', async () => {
    const { service } = makeService();
    upstream.latencyMs = 40;
    const leaderClient = new AbortController();
    const leader = service.generate(job('x'), {}, upstream, new SignalClient(leaderClient.signal));
    const follower = service.generate(job('x'), {}, upstream, client());
    await sleep(5);
    leaderClient.abort();
    await expect(leader).rejects.toMatchObject({ code: 'aborted' });
    expect((await follower).result.text).toBe(upstream.text);
    expect(upstream.aborted).toBe(0);
    expect((await service.generate(job('x'), {}, upstream, client())).headers?.['x-cache']).toBe('HIT');
    expect(upstream.calls).toBe(1);
  });

  it('a leading HTTP client lends its controller: leaving alone does not abort the shared call; all leaving does', async () => {
    const { service } = makeService();
    upstream.latencyMs = 40;
    const leaderRes = fakeResponse();
    const followerRes = fakeResponse();
    const leader = service.generate(job('y'), {}, upstream, new ResponseClient(leaderRes));
    const follower = service.generate(job('y'), {}, upstream, new ResponseClient(followerRes));
    await sleep(5);
    leaderRes.drop();
    await expect(leader).rejects.toMatchObject({ code: 'aborted' });
    expect((await follower).result.text).toBe(upstream.text);
    expect(upstream.aborted).toBe(0);

    const a = fakeResponse();
    const b = fakeResponse();
    const first = service.stream(job('w'), {}, upstream, new ResponseClient(a)).then(collect);
    const second = service.stream(job('w'), {}, upstream, new ResponseClient(b)).then(collect);
    await sleep(5);
    a.drop();
    b.drop();
    await expect(first).rejects.toMatchObject({ code: 'aborted' });
    await expect(second).rejects.toMatchObject({ code: 'aborted' });
    await sleep(5);
    expect(upstream.aborted).toBe(1);
    expect(upstream.calls).toBe(2);
    expect((await service.generate(job('w'), {}, upstream, client())).headers).toEqual({ 'x-cache': 'MISS' });
  });

  it('treats corrupt data under a key as a miss and overwrites it', async () => {
    const { service, cache } = makeService();
    const key = (service.plan(job('z'), {}) as { key: string }).key;
    for (const garbage of ['not an entry', { v: 1, text: 5 }, { v: 1, text: 'x', finishReason: 'stop', usage: {}, createdAt: 1 }]) {
      await cache.set(key, garbage, 60_000);
      const served = await service.generate(job('z'), {}, upstream, client());
      expect(served.headers).toEqual({ 'x-cache': 'MISS' });
    }
    expect((await service.generate(job('z'), {}, upstream, client())).headers?.['x-cache']).toBe('HIT');
  });

  it('keeps the in-memory store bounded (LRU)', async () => {
    const { service, keyv } = makeService({ CACHE_MAX_ENTRIES: '2' });
    for (const content of ['1', '2', '3']) await service.generate(job(content), {}, upstream, client());
    expect((keyv.store as { size: number }).size).toBeLessThanOrEqual(2);
    expect((await service.generate(job('1'), {}, upstream, client())).headers?.['x-cache']).toBe('MISS');
  });
});
