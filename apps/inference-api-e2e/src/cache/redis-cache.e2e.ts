import { type FakeUpstream, startFakeUpstream } from '@infer/model-providers/testing';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { type ApiServer, startApiServer } from '../support/api-server.js';
import { type RedisServer, startRedisServer } from '../support/redis-server.js';
import { TOKENS, cacheModelsYaml, chat, checkChatStream, expectedReply, sendAndDrop, sleep, uniquePrompt } from './cache-kit.js';

/** Keys of a RESP array reply to KEYS (the test helper returns raw RESP). */
function respKeys(reply: string): string[] {
  return reply.split('\r\n').filter((_line, i, lines) => i > 0 && lines[i - 1]?.startsWith('$') === true);
}

/** The response cache shared through a real redis-server by two real API processes. */
describe('response cache on Redis, two app processes', () => {
  let upstream: FakeUpstream;
  let redis: RedisServer;
  let a: ApiServer;
  let b: ApiServer;

  beforeAll(async () => {
    upstream = await startFakeUpstream({ tokens: TOKENS });
    redis = await startRedisServer();
    const options = { env: { REDIS_URL: redis.url }, modelsYaml: cacheModelsYaml(upstream.url) };
    [a, b] = await Promise.all([startApiServer(options), startApiServer(options)]);
  });

  afterAll(async () => {
    await Promise.all([a?.stop(), b?.stop()]);
    await redis?.stop();
    await upstream?.close();
  });

  beforeEach(async () => {
    upstream.reset();
    // Entries are written just after a response goes out: let the previous test's settle, then start clean.
    await sleep(50);
    expect(await redis.command('FLUSHALL')).toContain('OK');
  });

  const entryKeys = async () => respKeys(await redis.command('KEYS', 'infer:cache::*'));
  /** The one entry key, once it has been written. */
  const theEntryKey = async () => {
    const deadline = Date.now() + 2_000;
    for (;;) {
      const keys = await entryKeys();
      if (keys.length === 1) return keys[0]!;
      if (keys.length > 1 || Date.now() > deadline) throw new Error(`expected one entry, found ${JSON.stringify(keys)}`);
      await sleep(20);
    }
  };

  it('two processes share the cache', async () => {
    const prompt = uniquePrompt('shared');
    const first = await chat(a, prompt);
    expect(first.xCache).toBe('MISS');
    const second = await chat(b, prompt);
    expect(second.xCache).toBe('HIT');
    expect(second.content).toBe(expectedReply(prompt));
    expect(second.headers.get('x-served-by')).not.toBe(first.headers.get('x-served-by'));
    expect(upstream.requestCount).toBe(1);
    // Streamed from the other process too.
    const streamed = await chat(a, prompt, { stream: true, includeUsage: true });
    expect(streamed.xCache).toBe('HIT');
    expect(checkChatStream(streamed.sse!, true).content).toBe(expectedReply(prompt));
    expect(upstream.requestCount).toBe(1);
  });

  it("an upstream 429 reaches a request that waited on the other process's call with the same retry-after", async () => {
    const prompt = uniquePrompt('limited');
    upstream.configure({ latencyMs: 800, failNext: { count: 1, status: 429, headers: { 'retry-after': '7' } } });
    try {
      const leader = chat(a, prompt);
      await sleep(150);
      const follower = await chat(b, prompt);
      const first = await leader;
      expect(upstream.requestCount).toBe(1);
      for (const answer of [first, follower]) {
        expect(answer.status).toBe(429);
        expect(answer.headers.get('retry-after')).toBe('7');
        expect((answer.json as { error: { code: string } }).error.code).toBe('rate_limit_exceeded');
      }
    } finally {
      upstream.configure({ latencyMs: 0 });
    }
  });

  it('embeddings stored by one process are served by the other, under their own namespace', async () => {
    const input = [uniquePrompt('emb-shared')];
    const embed = (server: ApiServer) =>
      fetch(`${server.url}/v1/embeddings`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ model: 'm', input }) });
    const first = await embed(a);
    expect(first.headers.get('x-cache')).toBe('MISS');
    const firstBody = await first.json();
    const deadline = Date.now() + 2_000;
    while (respKeys(await redis.command('KEYS', 'infer:embeddings::*')).length === 0 && Date.now() < deadline) await sleep(20);
    const second = await embed(b);
    expect(second.headers.get('x-cache')).toBe('HIT');
    expect(await second.json()).toEqual(firstBody);
    expect(upstream.requestCount).toBe(1);
    expect(await entryKeys()).toEqual([]);
  });

  it('a tool-call answer stored by one process is served with the same calls by the other', async () => {
    const prompt = uniquePrompt('tools');
    const body = { tools: [{ type: 'function', function: { name: 'lookup', parameters: { type: 'object', properties: { q: { type: 'string' } } } } }] };
    const calls = (response: Awaited<ReturnType<typeof chat>>) =>
      (response.json?.['choices'] as Array<{ message: { tool_calls?: unknown[] }; finish_reason: string }>)[0];
    const first = await chat(a, prompt, { body });
    expect(first.xCache).toBe('MISS');
    expect(calls(first)?.finish_reason).toBe('tool_calls');
    expect(calls(first)?.message.tool_calls).toHaveLength(1);
    await theEntryKey();
    const second = await chat(b, prompt, { body });
    expect(second.xCache).toBe('HIT');
    expect(calls(second)).toEqual(calls(first));
    expect(upstream.requestCount).toBe(1);
  });

  for (const stream of [false, true]) {
    it(`50 identical concurrent ${stream ? 'streamed' : 'JSON'} requests over 2 processes: exactly 1 upstream call, 50 identical correct answers`, async () => {
      upstream.configure({ latencyMs: 400, interTokenDelayMs: stream ? 10 : 0 });
      const prompt = uniquePrompt(stream ? 'burst-stream' : 'burst-json');
      const responses = await Promise.all(
        Array.from({ length: 50 }, (_, i) => chat(i % 2 === 0 ? a : b, prompt, { stream, includeUsage: stream })),
      );
      expect(upstream.requestCount).toBe(1);
      const expected = expectedReply(prompt);
      for (const r of responses) {
        expect(r.status).toBe(200);
        if (stream) expect(checkChatStream(r.sse!, true).content).toBe(expected);
        else expect(r.content).toBe(expected);
      }
      expect(new Set(responses.map((r) => r.content)).size).toBe(1);
      expect(responses.filter((r) => r.xCache === 'MISS')).toHaveLength(1);
      expect(responses.filter((r) => r.xCache === 'HIT')).toHaveLength(49);
      expect(new Set(responses.map((r) => r.headers.get('x-served-by'))).size).toBe(2);
      expect(respKeys(await redis.command('KEYS', 'infer:lock:*'))).toEqual([]);
    });
  }

  it('an aborted stream leaves no entry', async () => {
    upstream.configure({ tokens: 100, interTokenDelayMs: 20 });
    const prompt = uniquePrompt('abort');
    await sendAndDrop(a, prompt, 300);
    await upstream.waitForAbort({ count: 1, timeoutMs: 3_000 });
    await sleep(100);
    expect(await entryKeys()).toEqual([]);
    upstream.configure({ tokens: TOKENS, interTokenDelayMs: 0 });
    expect((await chat(b, prompt)).xCache).toBe('MISS');
  });

  it('a failed stream leaves no entry', async () => {
    const prompt = uniquePrompt('fail');
    upstream.configure({ failNext: { mode: 'reset-mid-stream' } });
    const broken = await chat(a, prompt, { stream: true });
    expect(broken.sse).toContain('"error"');
    await sleep(100);
    expect(await entryKeys()).toEqual([]);
    const next = await chat(b, prompt, { stream: true });
    expect(next.xCache).toBe('MISS');
    expect(checkChatStream(next.sse!, false).content).toBe(expectedReply(prompt));
  });

  it('corrupt data under a cache key is a miss, not a 500, and gets overwritten', async () => {
    const prompt = uniquePrompt('corrupt');
    await chat(a, prompt);
    const key = await theEntryKey();
    for (const garbage of ['{definitely not json', '[1,2,3]', '{"value":{"v":1,"text":["x"]},"expires":null}']) {
      expect(await redis.command('SET', key, garbage)).toContain('OK');
      const r = await chat(b, prompt);
      expect(r.status, garbage).toBe(200);
      expect(r.xCache).toBe('MISS');
      expect(r.content).toBe(expectedReply(prompt));
      await sleep(50);
    }
    expect((await chat(a, prompt)).xCache).toBe('HIT');
    expect(upstream.requestCount).toBe(4);
  });

  it('entries expire in Redis after their TTL', async () => {
    const prompt = uniquePrompt('ttl');
    await chat(a, prompt, { headers: { 'x-cache-ttl': '1' } });
    const pttl = Number((await redis.command('PTTL', await theEntryKey())).slice(1));
    expect(pttl).toBeGreaterThan(0);
    expect(pttl).toBeLessThanOrEqual(1_000);
    expect((await chat(b, prompt)).xCache).toBe('HIT');
    await sleep(1_100);
    expect((await chat(b, prompt)).xCache).toBe('MISS');
    expect(upstream.requestCount).toBe(2);
  });
});
