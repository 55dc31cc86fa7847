import { request } from 'node:http';
import OpenAI from 'openai';
import { type FakeUpstream, fakeReplyText, startFakeUpstream } from '@infer/model-providers/testing';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { type ApiServer, startApiServer } from '../support/api-server.js';
import { TOKENS, cacheModelsYaml, chat, checkChatStream, expectedReply, sendAndDrop, sleep, uniquePrompt } from './cache-kit.js';

/** The response cache with its embedded store (in-memory LRU, no Redis), against a real server process. */
describe('response cache (in memory)', () => {
  let upstream: FakeUpstream;
  let server: ApiServer;

  beforeAll(async () => {
    upstream = await startFakeUpstream({ tokens: TOKENS });
    server = await startApiServer({ modelsYaml: cacheModelsYaml(upstream.url) });
  });

  afterAll(async () => {
    await server?.stop();
    await upstream?.close();
  });

  beforeEach(() => upstream.reset());

  it('serves a second identical request from the cache without reaching upstream', async () => {
    const prompt = uniquePrompt('repeat');
    const first = await chat(server, prompt);
    expect(first.status).toBe(200);
    expect(first.xCache).toBe('MISS');
    expect(first.age).toBeNull();
    expect(first.content).toBe(expectedReply(prompt));
    const second = await chat(server, prompt);
    expect(second.status).toBe(200);
    expect(second.xCache).toBe('HIT');
    expect(second.age).toBe('0');
    expect(second.content).toBe(first.content);
    expect(second.json?.['usage']).toEqual(first.json?.['usage']);
    expect(second.json?.['id']).not.toBe(first.json?.['id']);
    expect(upstream.requestCount).toBe(1);
  });

  it('caches /v1/completions and GET /predict too', async () => {
    const prompt = uniquePrompt('complete');
    const post = () =>
      fetch(`${server.url}/v1/completions`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ model: 'm', prompt, temperature: 0, max_tokens: 4 }),
      });
    const a = await post();
    const b = await post();
    expect([a.headers.get('x-cache'), b.headers.get('x-cache')]).toEqual(['MISS', 'HIT']);
    expect(((await b.json()) as { choices: Array<{ text: string }> }).choices[0]!.text).toBe(fakeReplyText(prompt, 4));
    const input = uniquePrompt('predict');
    const p1 = await fetch(`${server.url}/predict?input_text=${encodeURIComponent(input)}`);
    const p2 = await fetch(`${server.url}/predict?input_text=${encodeURIComponent(input)}`);
    expect([p1.headers.get('x-cache'), p2.headers.get('x-cache')]).toEqual(['MISS', 'HIT']);
    expect(await p2.json()).toEqual(await p1.json());
    expect(upstream.requestCount).toBe(2);
  });

  it('does not cache non-deterministic requests, unless a seed or an opt-in makes them so', async () => {
    const prompt = uniquePrompt('hot');
    const hot = { body: { temperature: 0.8 } };
    const r1 = await chat(server, prompt, hot);
    const r2 = await chat(server, prompt, hot);
    expect([r1.xCache, r2.xCache]).toEqual(['BYPASS', 'BYPASS']);
    expect(upstream.requestCount).toBe(2);
    const seeded = { body: { temperature: 0.8, seed: 7 } };
    expect((await chat(server, prompt, seeded)).xCache).toBe('MISS');
    expect((await chat(server, prompt, seeded)).xCache).toBe('HIT');
    const optIn = { body: { temperature: 0.8 }, headers: { 'x-cache-allow-nondeterministic': '1' } };
    expect((await chat(server, prompt, optIn)).xCache).toBe('MISS');
    expect((await chat(server, prompt, optIn)).xCache).toBe('HIT');
    expect(upstream.requestCount).toBe(4);
  });

  it('caches answers with logprobs under their own key, and replays their log probabilities (JSON and stream)', async () => {
    const prompt = uniquePrompt('logprobs');
    expect((await chat(server, prompt)).xCache).toBe('MISS');
    const withLogprobs = { body: { logprobs: true, top_logprobs: 1 } };
    const first = await chat(server, prompt, withLogprobs);
    expect(first.xCache).toBe('MISS');
    const logprobsOf = (json: Record<string, unknown> | undefined) =>
      (json?.['choices'] as Array<{ logprobs: { content: Array<{ token: string; top_logprobs: unknown[] }> } | null }>)[0]!.logprobs?.content;
    const content = logprobsOf(first.json)!;
    expect(content).toHaveLength(TOKENS);
    expect(content.map((e) => e.token).join('')).toBe(expectedReply(prompt));
    const hit = await chat(server, prompt, withLogprobs);
    expect(hit.xCache).toBe('HIT');
    expect(logprobsOf(hit.json)).toEqual(content);
    // A streamed HIT: one delta with the whole text and all its entries.
    const streamed = await chat(server, prompt, { ...withLogprobs, stream: true });
    expect(streamed.xCache).toBe('HIT');
    const events = streamed.sse!.split('\n\n').filter((e) => e.startsWith('data: {')).map((e) => JSON.parse(e.slice(6)) as Record<string, unknown>);
    expect(events.flatMap((e) => logprobsOf(e) ?? [])).toEqual(content);
    // Another number of alternatives is another entry; the plain request still has its own.
    expect((await chat(server, prompt, { body: { logprobs: true, top_logprobs: 2 } })).xCache).toBe('MISS');
    expect((await chat(server, prompt)).xCache).toBe('HIT');
    expect(upstream.requestCount).toBe(3);
    // A streamed MISS stores its entries too.
    const prompt2 = uniquePrompt('logprobs-stream');
    const streamedMiss = await chat(server, prompt2, { ...withLogprobs, stream: true });
    expect(streamedMiss.xCache).toBe('MISS');
    const afterStream = await chat(server, prompt2, withLogprobs);
    expect(afterStream.xCache).toBe('HIT');
    expect(logprobsOf(afterStream.json)).toHaveLength(TOKENS);
  });

  it('n > 1: greedy choices are one upstream call and one entry; sampled choices (opt-in) are separate entries', async () => {
    const prompt = uniquePrompt('choices');
    const greedy = await chat(server, prompt, { body: { n: 3 } });
    expect(greedy.xCache).toBe('MISS');
    const choices = greedy.json?.['choices'] as Array<{ index: number; message: { content: string } }>;
    expect(choices.map((c) => [c.index, c.message.content])).toEqual([0, 1, 2].map((i) => [i, expectedReply(prompt)]));
    expect(upstream.requestCount).toBe(1);
    // The same entry answers n = 1 and n = 3 again, and a stream of 2 choices.
    expect((await chat(server, prompt)).xCache).toBe('HIT');
    expect((await chat(server, prompt, { body: { n: 3 } })).xCache).toBe('HIT');
    const streamed = await chat(server, prompt, { body: { n: 2 }, stream: true });
    expect(streamed.xCache).toBe('HIT');
    expect(upstream.requestCount).toBe(1);
    // Sampling without a seed, cached on opt-in: one entry per choice, not one sample repeated.
    const sampled = { body: { n: 2, temperature: 0.9 }, headers: { 'x-cache-allow-nondeterministic': '1' } };
    expect((await chat(server, prompt, sampled)).xCache).toBe('MISS');
    expect(upstream.requestCount).toBe(3);
    expect((await chat(server, prompt, sampled)).xCache).toBe('HIT');
    expect(upstream.requestCount).toBe(3);
  });

  it('n > 1: a choice that fails fails the request (the OpenAI error), and nothing is half-stored', async () => {
    const prompt = uniquePrompt('choice-fails');
    upstream.configure({ failNext: { count: 1, status: 400, body: { error: { message: 'bad choice', type: 'invalid_request_error', param: null, code: null } } } });
    const sampled = { body: { n: 3, temperature: 0.9 }, headers: { 'x-cache-allow-nondeterministic': '1' } };
    const failed = await chat(server, prompt, sampled);
    expect(failed.status).toBe(400);
    expect((failed.json?.['error'] as { message: string }).message).toMatch(/bad choice/);
    // A stopped choice's call may already be on its way to the upstream: let it arrive (and be aborted) first.
    await sleep(200);
    await upstream.waitForIdle();
    const calls = upstream.requestCount;
    // The two choices that succeeded may be stored; the request again asks only for what is missing.
    const again = await chat(server, prompt, sampled);
    expect(again.status).toBe(200);
    expect((again.json?.['choices'] as unknown[]).length).toBe(3);
    expect(upstream.requestCount - calls).toBeLessThanOrEqual(3);
    expect(upstream.requestCount - calls).toBeGreaterThanOrEqual(1);
  });

  it('caches embeddings: one upstream call, the same vectors as floats and as base64, keyed on inputs and dimensions', async () => {
    const client = new OpenAI({ baseURL: `${server.url}/v1`, apiKey: 'k', maxRetries: 0 });
    const input = [uniquePrompt('emb-a'), uniquePrompt('emb-b')];
    const calls = () => upstream.requests.filter((r) => r.path.endsWith('/embeddings')).length;
    const first = await client.embeddings.create({ model: 'm', input, encoding_format: 'float' }).withResponse();
    expect(first.response.headers.get('x-cache')).toBe('MISS');
    await sleep(20);
    const second = await client.embeddings.create({ model: 'm', input, encoding_format: 'float' }).withResponse();
    expect(second.response.headers.get('x-cache')).toBe('HIT');
    expect(second.data.data).toEqual(first.data.data);
    expect(second.data.usage).toEqual(first.data.usage);
    // The SDK's default (base64) from the same entry decodes to the same vectors, as float32.
    const base64 = await client.embeddings.create({ model: 'm', input }).withResponse();
    expect(base64.response.headers.get('x-cache')).toBe('HIT');
    base64.data.data.forEach((item, i) => {
      const expected = Array.from(new Float32Array(first.data.data[i]!.embedding));
      expect(item.embedding).toEqual(expected);
    });
    expect(calls()).toBe(1);
    // Other inputs, order or dimensions are other entries; no-store neither reads nor writes.
    const reversed = await client.embeddings.create({ model: 'm', input: [...input].reverse() }).withResponse();
    expect(reversed.response.headers.get('x-cache')).toBe('MISS');
    const dims = await client.embeddings.create({ model: 'm', input, dimensions: 4 }).withResponse();
    expect(dims.response.headers.get('x-cache')).toBe('MISS');
    const noStore = await client.embeddings.create({ model: 'm', input }, { headers: { 'cache-control': 'no-store' } }).withResponse();
    expect(noStore.response.headers.get('x-cache')).toBe('BYPASS');
    expect(calls()).toBe(4);
  });

  it('Cache-Control: no-cache skips the lookup and refreshes the entry', async () => {
    const prompt = uniquePrompt('no-cache');
    await chat(server, prompt);
    await sleep(1_100);
    expect((await chat(server, prompt)).age).toBe('1');
    const refreshed = await chat(server, prompt, { headers: { 'cache-control': 'no-cache' } });
    expect(refreshed.xCache).toBe('MISS');
    expect(upstream.requestCount).toBe(2);
    const after = await chat(server, prompt);
    expect(after.xCache).toBe('HIT');
    expect(after.age).toBe('0'); // the refreshed entry
    expect(upstream.requestCount).toBe(2);
  });

  it('Cache-Control: no-store neither reads nor writes', async () => {
    const prompt = uniquePrompt('no-store');
    const noStore = { headers: { 'cache-control': 'no-store' } };
    expect((await chat(server, prompt, noStore)).xCache).toBe('BYPASS');
    expect((await chat(server, prompt)).xCache).toBe('MISS'); // nothing was written
    expect((await chat(server, prompt, noStore)).xCache).toBe('BYPASS'); // an entry exists, not read
    expect(upstream.requestCount).toBe(3);
  });

  it('expires entries: per-request TTL, per-model TTL, and a malformed TTL is a 400', async () => {
    const prompt = uniquePrompt('ttl');
    await chat(server, prompt, { headers: { 'x-cache-ttl': '1' } });
    expect((await chat(server, prompt)).xCache).toBe('HIT');
    const shortPrompt = uniquePrompt('ttl-model');
    await chat(server, shortPrompt, { model: 'm-short' });
    expect((await chat(server, shortPrompt, { model: 'm-short' })).xCache).toBe('HIT');
    await sleep(1_100);
    expect((await chat(server, prompt)).xCache).toBe('MISS');
    expect((await chat(server, shortPrompt, { model: 'm-short' })).xCache).toBe('MISS');
    expect(upstream.requestCount).toBe(4);
    const bad = await chat(server, prompt, { headers: { 'x-cache-ttl': 'soon' } });
    expect(bad.status).toBe(400);
    expect(bad.json?.['error']).toMatchObject({ param: 'x-cache-ttl', type: 'invalid_request_error' });
  });

  it('expires entries after the global CACHE_TTL_SECONDS', async () => {
    const shortLived = await startApiServer({ env: { CACHE_TTL_SECONDS: '1' }, modelsYaml: cacheModelsYaml(upstream.url) });
    try {
      const prompt = uniquePrompt('global-ttl');
      expect((await chat(shortLived, prompt)).xCache).toBe('MISS');
      expect((await chat(shortLived, prompt)).xCache).toBe('HIT');
      await sleep(1_100);
      expect((await chat(shortLived, prompt)).xCache).toBe('MISS');
      expect(upstream.requestCount).toBe(2);
    } finally {
      await shortLived.stop();
    }
  });

  it('stores a completed stream and replays it as well-formed SSE, to streaming and JSON requests', async () => {
    const prompt = uniquePrompt('stream');
    const live = await chat(server, prompt, { stream: true, includeUsage: true });
    expect(live.xCache).toBe('MISS');
    const liveStream = checkChatStream(live.sse!, true);
    expect(liveStream.content).toBe(expectedReply(prompt));
    const replay = await chat(server, prompt, { stream: true, includeUsage: true });
    expect(replay.xCache).toBe('HIT');
    expect(replay.age).toBe('0');
    expect(checkChatStream(replay.sse!, true)).toEqual(liveStream);
    // Same chunking as the original stream: one event per token, plus role, finish, usage, [DONE].
    expect(replay.sse!.split('\n\n').filter(Boolean)).toHaveLength(TOKENS + 4);
    const withoutUsage = await chat(server, prompt, { stream: true });
    expect(checkChatStream(withoutUsage.sse!, false).content).toBe(liveStream.content);
    const json = await chat(server, prompt);
    expect(json.xCache).toBe('HIT');
    expect(json.content).toBe(liveStream.content);
    expect(json.json?.['usage']).toEqual(liveStream.usage);
    expect(upstream.requestCount).toBe(1);
  });

  it('serves a stream request from an entry made by a JSON request (and the OpenAI SDK reads it)', async () => {
    const prompt = uniquePrompt('json-first');
    const json = await chat(server, prompt);
    const client = new OpenAI({ baseURL: `${server.url}/v1`, apiKey: 'k', maxRetries: 0 });
    const { data: stream, response } = await client.chat.completions
      .create({ model: 'm', messages: [{ role: 'user', content: prompt }], temperature: 0, stream: true, stream_options: { include_usage: true } })
      .withResponse();
    expect(response.headers.get('x-cache')).toBe('HIT');
    let content = '';
    let finish: string | null | undefined;
    let usage: unknown;
    for await (const chunk of stream) {
      content += chunk.choices[0]?.delta.content ?? '';
      finish ??= chunk.choices[0]?.finish_reason;
      if (chunk.usage) usage = chunk.usage;
    }
    expect(content).toBe(json.content);
    expect(finish).toBe('stop');
    expect(usage).toEqual(json.json?.['usage']);
    expect(upstream.requestCount).toBe(1);
  });

  it('caches tool-call answers: a streamed miss is replayed as the same calls, to JSON and stream requests', async () => {
    const prompt = uniquePrompt('tools');
    const tools = [
      { type: 'function', function: { name: 'get_weather', parameters: { type: 'object', properties: { city: { type: 'string' } } } } },
      { type: 'function', function: { name: 'get_time' } },
    ];
    const client = new OpenAI({ baseURL: `${server.url}/v1`, apiKey: 'k', maxRetries: 0 });
    const ask = { model: 'm', messages: [{ role: 'user' as const, content: prompt }], temperature: 0, tools: tools as OpenAI.ChatCompletionTool[] };
    const collect = async () => {
      const { data: stream, response } = await client.chat.completions.create({ ...ask, stream: true }).withResponse();
      const pieces: unknown[] = [];
      let finish: string | null | undefined;
      for await (const chunk of stream) {
        pieces.push(...(chunk.choices[0]?.delta.tool_calls ?? []));
        finish ??= chunk.choices[0]?.finish_reason;
      }
      return { xCache: response.headers.get('x-cache'), pieces, finish };
    };
    const live = await collect();
    expect(live.xCache).toBe('MISS');
    expect(live.finish).toBe('tool_calls');
    const { data: json, response } = await client.chat.completions.create(ask).withResponse();
    expect(response.headers.get('x-cache')).toBe('HIT');
    const calls = json.choices[0]!.message.tool_calls ?? [];
    expect(calls.map((c) => c.type === 'function' && c.function.name)).toEqual(['get_weather', 'get_time']);
    expect(json.choices[0]!.message.content).toBeNull();
    expect(json.choices[0]!.finish_reason).toBe('tool_calls');
    // The live pieces, joined, are the cached calls (ids included).
    const joined: Array<{ id?: string; name?: string; arguments: string }> = [];
    for (const piece of live.pieces as Array<{ index: number; id?: string; function?: { name?: string; arguments?: string } }>) {
      const call = (joined[piece.index] ??= { id: piece.id, name: piece.function?.name, arguments: '' });
      call.arguments += piece.function?.arguments ?? '';
    }
    expect(joined).toEqual(calls.map((c) => c.type === 'function' && { id: c.id, name: c.function.name, arguments: c.function.arguments }));
    // A replayed stream carries each call whole.
    const replay = await collect();
    expect(replay.xCache).toBe('HIT');
    expect(replay.finish).toBe('tool_calls');
    expect(replay.pieces).toEqual(calls.map((c, index) => c.type === 'function' && { index, id: c.id, type: 'function', function: { name: c.function.name, arguments: c.function.arguments } }));
    expect(upstream.requestCount).toBe(1);
    // Other tools, or the conversation going on with the results, are other entries.
    const other = await client.chat.completions.create({ ...ask, tools: ask.tools.slice(1) }).withResponse();
    expect(other.response.headers.get('x-cache')).toBe('MISS');
    const followUp = await client.chat.completions
      .create({
        ...ask,
        messages: [...ask.messages, json.choices[0]!.message, ...calls.map((c) => ({ role: 'tool' as const, tool_call_id: c.id, content: 'ok' }))],
      })
      .withResponse();
    expect(followUp.response.headers.get('x-cache')).toBe('MISS');
    expect(followUp.data.choices[0]!.finish_reason).toBe('stop');
    expect(upstream.requestCount).toBe(3);
  });

  it('an aborted stream leaves no entry (and its upstream call is aborted)', async () => {
    upstream.configure({ tokens: 100, interTokenDelayMs: 20 });
    const prompt = uniquePrompt('abort');
    const received = await sendAndDrop(server, prompt, 300);
    expect(received).toBeGreaterThanOrEqual(300);
    await upstream.waitForAbort({ count: 1, timeoutMs: 3_000 });
    upstream.configure({ tokens: TOKENS, interTokenDelayMs: 0 });
    const next = await chat(server, prompt);
    expect(next.xCache).toBe('MISS');
    expect(next.content).toBe(expectedReply(prompt));
    expect(upstream.requestCount).toBe(2);
  });

  it('a failed stream leaves no entry', async () => {
    const prompt = uniquePrompt('fail');
    upstream.configure({ failNext: { mode: 'reset-mid-stream' } });
    const broken = await chat(server, prompt, { stream: true });
    expect(broken.status).toBe(200);
    expect(broken.sse).toContain('"error"');
    expect(broken.sse).not.toContain('[DONE]');
    const next = await chat(server, prompt, { stream: true });
    expect(next.xCache).toBe('MISS');
    expect(checkChatStream(next.sse!, false).content).toBe(expectedReply(prompt));
    expect(upstream.requestCount).toBe(2);
  });

  it('coalesces identical concurrent requests into one upstream call', async () => {
    upstream.configure({ latencyMs: 300 });
    const prompt = uniquePrompt('burst');
    const responses = await Promise.all(Array.from({ length: 20 }, (_, i) => chat(server, prompt, { stream: i % 2 === 1 })));
    upstream.configure({ latencyMs: 0 });
    expect(upstream.requestCount).toBe(1);
    for (const r of responses) {
      expect(r.status).toBe(200);
      expect(r.content).toBe(expectedReply(prompt));
    }
    expect(responses.filter((r) => r.xCache === 'MISS')).toHaveLength(1);
  });

  it('coalesces identical concurrent embeddings requests; the first client leaving does not fail the others', async () => {
    upstream.configure({ latencyMs: 300 });
    const input = [uniquePrompt('emb-burst-a'), uniquePrompt('emb-burst-b')];
    const body = JSON.stringify({ model: 'm', input, encoding_format: 'float' });
    const calls = () => upstream.requests.filter((r) => r.path.endsWith('/embeddings')).length;
    // The first request leads the model call, then its client leaves while the call is under way.
    const first = request(`${server.url}/v1/embeddings`, { method: 'POST', headers: { 'content-type': 'application/json' } });
    first.on('error', () => undefined);
    first.end(body);
    await sleep(50);
    const post = () => fetch(`${server.url}/v1/embeddings`, { method: 'POST', headers: { 'content-type': 'application/json' }, body });
    const pending = Array.from({ length: 9 }, post);
    await sleep(50);
    first.destroy();
    const responses = await Promise.all(pending);
    upstream.configure({ latencyMs: 0 });
    expect(calls()).toBe(1);
    const bodies = await Promise.all(responses.map((r) => r.json() as Promise<{ data: Array<{ embedding: number[] }> }>));
    for (const r of responses) {
      expect(r.status).toBe(200);
      expect([r.headers.get('x-cache'), r.headers.get('age')]).toEqual(['HIT', '0']);
    }
    for (const b of bodies) expect(b.data).toEqual(bodies[0]!.data);
    expect(bodies[0]!.data).toHaveLength(2);
    // Stored once the call ended: the next one is a HIT from the store, with the same vectors.
    await sleep(20);
    const after = await post();
    expect(after.headers.get('x-cache')).toBe('HIT');
    expect(((await after.json()) as { data: unknown }).data).toEqual(bodies[0]!.data);
    expect(calls()).toBe(1);
  });
});

describe('response cache (in memory): CACHE_MAX_BYTES', () => {
  let upstream: FakeUpstream;
  let server: ApiServer;

  beforeAll(async () => {
    upstream = await startFakeUpstream({ tokens: 2_000 });
    server = await startApiServer({ env: { CACHE_MAX_BYTES: '1048576' }, modelsYaml: cacheModelsYaml(upstream.url) });
  });

  afterAll(async () => {
    await server?.stop();
    await upstream?.close();
  });

  it('an answer too large for the budget is served but not kept (2000 tokens with 20 alternatives each: megabytes); small ones are', async () => {
    const big = { logprobs: true, top_logprobs: 20 };
    expect((await chat(server, uniquePrompt('big'), { body: { ...big, max_tokens: 2_000 } })).xCache).toBe('MISS');
    const prompt = uniquePrompt('big again');
    for (const expected of ['MISS', 'MISS']) {
      const answer = await chat(server, prompt, { body: { ...big, max_tokens: 2_000 } });
      expect(answer.status).toBe(200);
      expect(answer.xCache).toBe(expected);
    }
    const small = uniquePrompt('small');
    expect((await chat(server, small, { body: { max_tokens: 4 } })).xCache).toBe('MISS');
    expect((await chat(server, small, { body: { max_tokens: 4 } })).xCache).toBe('HIT');
  });
});
