import { request as httpRequest } from 'node:http';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { fakeReplyHash, fakeReplyLogprobs, fakeReplyText, fakeReplyTokens, startFakeUpstream } from './fake-upstream.js';
import type { FakeUpstream, FakeUpstreamAbortEvent } from './fake-upstream.js';

let upstream: FakeUpstream;

beforeAll(async () => {
  upstream = await startFakeUpstream();
});
afterEach(() => upstream.reset());
afterAll(() => upstream.close());

const chatBody = (content: string, extra: Record<string, unknown> = {}): Record<string, unknown> => ({
  model: 'some-model',
  messages: [{ role: 'user', content }],
  ...extra,
});

async function post(path: string, body: unknown, init: RequestInit = {}): Promise<Response> {
  return fetch(`${upstream.url}${path}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: typeof body === 'string' ? body : JSON.stringify(body),
    ...init,
  });
}

/** The JSON payloads of an SSE body, and whether it ended with [DONE]. */
function sseData(text: string): { events: Array<Record<string, unknown>>; done: boolean } {
  const datas = text
    .split('\n\n')
    .filter((block) => block.startsWith('data: '))
    .map((block) => block.slice('data: '.length));
  const done = datas.at(-1) === '[DONE]';
  return { events: datas.filter((d) => d !== '[DONE]').map((d) => JSON.parse(d) as Record<string, unknown>), done };
}

describe('startFakeUpstream', () => {
  it('listens on 127.0.0.1 with a free port and exposes a /v1 base URL', () => {
    expect(upstream.port).toBeGreaterThan(0);
    expect(upstream.url).toBe(`http://127.0.0.1:${upstream.port}/v1`);
  });

  it('lists its models, and answers 503 when unhealthy', async () => {
    const list = (await (await fetch(`${upstream.url}/models`)).json()) as { object: string; data: Array<{ id: string }> };
    expect(list.object).toBe('list');
    expect(list.data.map((m) => m.id)).toEqual(['fake-model']);
    upstream.configure({ unhealthy: true, models: ['a', 'b'] });
    expect((await fetch(`${upstream.url}/models`)).status).toBe(503);
    upstream.configure({ unhealthy: false });
    const again = (await (await fetch(`${upstream.url}/models`)).json()) as { data: Array<{ id: string }> };
    expect(again.data.map((m) => m.id)).toEqual(['a', 'b']);
  });

  it('answers chat completions with a deterministic, prompt-derived reply', async () => {
    const res = await post('/chat/completions', chatBody('Hello'));
    expect(res.status).toBe(200);
    const body = (await res.json()) as Record<string, unknown>;
    expect(body).toMatchObject({
      object: 'chat.completion',
      model: 'some-model',
      choices: [{ index: 0, message: { role: 'assistant', content: fakeReplyText('Hello', 16) }, finish_reason: 'stop' }],
      usage: { prompt_tokens: 2, completion_tokens: 16, total_tokens: 18 },
    });
    expect(fakeReplyText('Hello', 3)).toBe(`${fakeReplyHash('Hello')} tok1 tok2`);
    const other = (await (await post('/chat/completions', chatBody('Goodbye'))).json()) as {
      choices: Array<{ message: { content: string } }>;
    };
    expect(other.choices[0]?.message.content).toBe(fakeReplyText('Goodbye', 16));
    expect(fakeReplyText('Goodbye', 16)).not.toBe(fakeReplyText('Hello', 16));
  });

  it('honours max_tokens and max_completion_tokens with finish_reason length, and the tokens option', async () => {
    const truncated = (await (await post('/chat/completions', chatBody('Hi', { max_tokens: 4 }))).json()) as {
      choices: Array<{ message: { content: string }; finish_reason: string }>;
      usage: { completion_tokens: number };
    };
    expect(truncated.choices[0]).toMatchObject({ message: { content: fakeReplyText('Hi', 4) }, finish_reason: 'length' });
    expect(truncated.usage.completion_tokens).toBe(4);
    const viaNewField = (await (await post('/chat/completions', chatBody('Hi', { max_completion_tokens: 2 }))).json()) as {
      choices: Array<{ finish_reason: string }>;
    };
    expect(viaNewField.choices[0]?.finish_reason).toBe('length');
    upstream.configure({ tokens: 3 });
    const short = (await (await post('/chat/completions', chatBody('Hi', { max_tokens: 10 }))).json()) as {
      choices: Array<{ message: { content: string }; finish_reason: string }>;
    };
    expect(short.choices[0]).toMatchObject({ message: { content: fakeReplyText('Hi', 3) }, finish_reason: 'stop' });
  });

  it('answers text completions, stream and not', async () => {
    const body = (await (await post('/completions', { model: 'm', prompt: 'Once', max_tokens: 2 })).json()) as Record<string, unknown>;
    expect(body).toMatchObject({
      object: 'text_completion',
      choices: [{ index: 0, text: fakeReplyText('Once', 2), finish_reason: 'length' }],
      usage: { prompt_tokens: 1, completion_tokens: 2 },
    });
    const res = await post('/completions', { model: 'm', prompt: 'Once', max_tokens: 2, stream: true });
    const { events, done } = sseData(await res.text());
    expect(done).toBe(true);
    expect(events.map((e) => (e['choices'] as Array<{ text: string; finish_reason: string | null }>)[0])).toEqual([
      { index: 0, text: fakeReplyHash('Once'), logprobs: null, finish_reason: null },
      { index: 0, text: ' tok1', logprobs: null, finish_reason: null },
      { index: 0, text: '', logprobs: null, finish_reason: 'length' },
    ]);
  });

  it('streams chat as SSE: role chunk, content chunks, finish chunk, usage chunk, [DONE]', async () => {
    upstream.configure({ tokens: 3 });
    const res = await post('/chat/completions', chatBody('Hey', { stream: true, stream_options: { include_usage: true } }));
    expect(res.headers.get('content-type')).toBe('text/event-stream');
    const text = await res.text();
    expect(text.endsWith('data: [DONE]\n\n')).toBe(true);
    const { events } = sseData(text);
    expect(events.every((e) => e['object'] === 'chat.completion.chunk')).toBe(true);
    expect(events.map((e) => e['choices'])).toEqual([
      [{ index: 0, delta: { role: 'assistant', content: '' }, logprobs: null, finish_reason: null }],
      [{ index: 0, delta: { content: fakeReplyHash('Hey') }, logprobs: null, finish_reason: null }],
      [{ index: 0, delta: { content: ' tok1' }, logprobs: null, finish_reason: null }],
      [{ index: 0, delta: { content: ' tok2' }, logprobs: null, finish_reason: null }],
      [{ index: 0, delta: {}, logprobs: null, finish_reason: 'stop' }],
      [],
    ]);
    expect(events.at(-1)?.['usage']).toEqual({ prompt_tokens: 1, completion_tokens: 3, total_tokens: 4 });

    const withoutUsage = sseData(await (await post('/chat/completions', chatBody('Hey', { stream: true }))).text());
    expect(withoutUsage.events.some((e) => 'usage' in e)).toBe(false);
    upstream.configure({ streamUsage: false });
    const refused = sseData(
      await (await post('/chat/completions', chatBody('Hey', { stream: true, stream_options: { include_usage: true } }))).text(),
    );
    expect(refused.events.some((e) => 'usage' in e)).toBe(false);
  });

  it('waits latencyMs before the first byte and interTokenDelayMs between stream chunks', async () => {
    upstream.configure({ latencyMs: 150 });
    let started = Date.now();
    await (await post('/chat/completions', chatBody('x'))).json();
    expect(Date.now() - started).toBeGreaterThanOrEqual(140);

    upstream.configure({ latencyMs: 0, interTokenDelayMs: 30, tokens: 5 });
    started = Date.now();
    const res = await post('/chat/completions', chatBody('x', { stream: true }));
    const reader = res.body!.getReader();
    const firstChunkAt = (await reader.read(), Date.now() - started);
    while (!(await reader.read()).done) {
      /* drain */
    }
    expect(firstChunkAt).toBeLessThan(100);
    expect(Date.now() - started).toBeGreaterThanOrEqual(5 * 30);
  });

  it('counts inference calls and keeps a bounded log of recent requests', async () => {
    upstream.configure({ recordLimit: 3 });
    for (let i = 0; i < 5; i += 1) await (await post('/chat/completions', chatBody(`m${i}`))).text();
    await (await fetch(`${upstream.url}/models`)).text();
    expect(upstream.requestCount).toBe(5);
    expect(upstream.requests.map((r) => `${r.method} ${r.path}`)).toEqual([
      'POST /v1/chat/completions',
      'POST /v1/chat/completions',
      'GET /v1/models',
    ]);
    expect(upstream.requests[1]?.body).toEqual(chatBody('m4'));
    expect(upstream.requests[1]?.headers['content-type']).toBe('application/json');
  });

  it('answers 400 for invalid bodies, 404 for unknown routes, 401 without the API key', async () => {
    const bad = await post('/chat/completions', '{not json');
    expect(bad.status).toBe(400);
    expect(await bad.json()).toMatchObject({ error: { type: 'invalid_request_error' } });
    const missing = await post('/completions', { model: 'm' });
    expect(missing.status).toBe(400);
    expect(await missing.json()).toMatchObject({ error: { param: 'prompt' } });
    expect((await fetch(`${upstream.url}/nope`)).status).toBe(404);

    upstream.configure({ apiKey: 'k' });
    const denied = await post('/chat/completions', chatBody('x'));
    expect(denied.status).toBe(401);
    expect(await denied.json()).toMatchObject({ error: { code: 'invalid_api_key' } });
    expect((await post('/chat/completions', chatBody('x'), { headers: { authorization: 'Bearer k' } })).status).toBe(200);
  });

  it('reports its counters on GET /__fake/stats without recording the call', async () => {
    await post('/chat/completions', chatBody('x'));
    await post('/completions', { model: 'm', prompt: 'p' });
    const logged = upstream.requests.length;
    const res = await fetch(`${upstream.url.replace(/\/v1$/, '')}/__fake/stats`);
    expect(res.status).toBe(200);
    expect(await res.json()).toMatchObject({ requestCount: 2, inFlight: 0, abortedRequests: 0, abortedStreams: 0 });
    expect(upstream.requests).toHaveLength(logged);
  });
});

describe('log probabilities', () => {
  const logprobOf = (prompt: string, i: number): number => -(((Number.parseInt(fakeReplyHash(prompt), 16) + i) % 7) + 1) / 10;
  const bytesOf = (text: string): number[] => [...Buffer.from(text, 'utf8')];

  it('answers chat logprobs: true in OpenAI form, top_logprobs alternatives most likely first', async () => {
    const body = (await (await post('/chat/completions', chatBody('Hello', { max_tokens: 3, logprobs: true, top_logprobs: 3 }))).json()) as {
      choices: Array<{ logprobs: { content: unknown[] } }>;
    };
    const tokens = fakeReplyTokens('Hello', 3);
    expect(body.choices[0]?.logprobs.content).toEqual(
      tokens.map((token, i) => ({
        token,
        logprob: logprobOf('Hello', i),
        bytes: bytesOf(token),
        top_logprobs: [
          { token, logprob: logprobOf('Hello', i), bytes: bytesOf(token) },
          { token: 'alt1', logprob: logprobOf('Hello', i) - 3, bytes: bytesOf('alt1') },
          { token: 'alt2', logprob: logprobOf('Hello', i) - 6, bytes: bytesOf('alt2') },
        ].map((entry) => ({ ...entry, logprob: expect.closeTo(entry.logprob, 10) })),
      })),
    );
    const entries = body.choices[0]?.logprobs.content as Array<{ logprob: number; top_logprobs: Array<{ logprob: number }> }>;
    for (const entry of entries) {
      const probabilities = entry.top_logprobs.reduce((sum, alternative) => sum + Math.exp(alternative.logprob), 0);
      expect(probabilities).toBeLessThan(1);
    }
    // Without top_logprobs: the chosen tokens only.
    const bare = (await (await post('/chat/completions', chatBody('Hello', { max_tokens: 2, logprobs: true }))).json()) as {
      choices: Array<{ logprobs: { content: Array<{ top_logprobs: unknown[] }> } }>;
    };
    expect(bare.choices[0]?.logprobs.content.map((entry) => entry.top_logprobs)).toEqual([[], []]);
    // logprobs: false, or a chat request with the legacy number, gets none.
    for (const logprobs of [false, 2]) {
      const none = (await (await post('/chat/completions', chatBody('Hello', { logprobs }))).json()) as { choices: Array<{ logprobs: unknown }> };
      expect(none.choices[0]?.logprobs).toBeNull();
    }
  });

  it('streams each chat chunk with the entry of its token', async () => {
    upstream.configure({ tokens: 3 });
    const { events } = sseData(await (await post('/chat/completions', chatBody('Hey', { stream: true, logprobs: true, top_logprobs: 1 }))).text());
    const choices = events.map((e) => (e['choices'] as Array<{ delta: { content?: string }; logprobs: { content: unknown[] } | null }>)[0]);
    expect(choices[0]?.logprobs).toBeNull();
    expect(choices.at(-1)?.logprobs).toBeNull();
    const contentChunks = choices.slice(1, -1);
    expect(contentChunks.map((c) => c?.logprobs?.content)).toEqual(
      fakeReplyTokens('Hey', 3).map((token, i) => [
        { token, logprob: logprobOf('Hey', i), bytes: bytesOf(token), top_logprobs: [{ token, logprob: logprobOf('Hey', i), bytes: bytesOf(token) }] },
      ]),
    );
  });

  it('answers a numeric completions logprobs in the legacy form, with text offsets, stream and not', async () => {
    const body = (await (await post('/completions', { model: 'm', prompt: 'Once', max_tokens: 3, logprobs: 2 })).json()) as {
      choices: Array<{ text: string; logprobs: Record<string, unknown> }>;
    };
    const tokens = fakeReplyTokens('Once', 3);
    const logprobs = tokens.map((_, i) => logprobOf('Once', i));
    expect(body.choices[0]?.logprobs).toEqual({
      tokens,
      token_logprobs: logprobs,
      top_logprobs: tokens.map((token, i) => ({ [token]: logprobs[i], alt1: expect.closeTo((logprobs[i] as number) - 3, 10) })),
      text_offset: [0, 8, 13],
    });
    const text = body.choices[0]?.text ?? '';
    expect(tokens.map((token, i) => text.slice([0, 8, 13][i]).startsWith(token))).toEqual([true, true, true]);

    const { events } = sseData(await (await post('/completions', { model: 'm', prompt: 'Once', max_tokens: 3, logprobs: 0, stream: true })).text());
    const chunks = events.map((e) => (e['choices'] as Array<{ logprobs: unknown }>)[0]?.logprobs);
    expect(chunks).toEqual([
      ...tokens.map((token, i) => ({ tokens: [token], token_logprobs: [logprobs[i]], top_logprobs: [{}], text_offset: [[0, 8, 13][i]] })),
      null,
    ]);
    // The legacy form in chat, or `true` in completions, is not a request for logprobs.
    const none = (await (await post('/completions', { model: 'm', prompt: 'Once', logprobs: true })).json()) as { choices: Array<{ logprobs: unknown }> };
    expect(none.choices[0]?.logprobs).toBeNull();
  });

  it('agrees with fakeReplyLogprobs, and gives tool-call replies none', async () => {
    const body = (await (await post('/chat/completions', chatBody('Hi', { max_tokens: 4, logprobs: true, top_logprobs: 2 }))).json()) as {
      choices: Array<{ logprobs: { content: Array<{ token: string; logprob: number; bytes: number[]; top_logprobs: unknown[] }> } }>;
    };
    const asContract = body.choices[0]?.logprobs.content.map(({ top_logprobs, ...entry }) => ({ ...entry, top: top_logprobs }));
    expect(asContract).toEqual(fakeReplyLogprobs('Hi', 4, 2));
    const tools = [{ type: 'function', function: { name: 'f', parameters: { type: 'object', properties: { a: { type: 'string' } } } } }];
    const called = (await (await post('/chat/completions', chatBody('Hi', { tools, logprobs: true, top_logprobs: 2 }))).json()) as {
      choices: Array<{ finish_reason: string; logprobs: unknown }>;
    };
    expect(called.choices[0]).toMatchObject({ finish_reason: 'tool_calls', logprobs: null });
  });
});

describe('failure injection', () => {
  it('fails the next `count` calls with the given status and body, then recovers', async () => {
    upstream.configure({ failNext: { count: 2, status: 429, headers: { 'retry-after': '1' } } });
    const first = await post('/chat/completions', chatBody('x'));
    expect(first.status).toBe(429);
    expect(first.headers.get('retry-after')).toBe('1');
    expect(await first.json()).toMatchObject({ error: { type: 'rate_limit_error' } });
    expect((await post('/completions', { prompt: 'x' })).status).toBe(429);
    expect((await post('/chat/completions', chatBody('x'))).status).toBe(200);

    upstream.configure({ failNext: { status: 500, body: 'plain text' } });
    const custom = await post('/chat/completions', chatBody('x'));
    expect(custom.status).toBe(500);
    expect(await custom.text()).toBe('plain text');
  });

  it('resets the socket before any byte', async () => {
    upstream.configure({ failNext: { mode: 'reset' } });
    await expect(post('/chat/completions', chatBody('x'))).rejects.toThrow();
    expect((await post('/chat/completions', chatBody('x'))).status).toBe(200);
  });

  it('resets the socket in the middle of a stream', async () => {
    upstream.configure({ failNext: { mode: 'reset-mid-stream' }, tokens: 8 });
    const res = await post('/chat/completions', chatBody('x', { stream: true }));
    expect(res.status).toBe(200);
    const reader = res.body!.getReader();
    let received = '';
    await expect(
      (async () => {
        for (;;) {
          const { done, value } = await reader.read();
          if (done) return;
          received += Buffer.from(value).toString();
        }
      })(),
    ).rejects.toThrow();
    expect(received).toContain(fakeReplyHash('x'));
    expect(received).not.toContain('[DONE]');
  });

  it('sends malformed JSON', async () => {
    upstream.configure({ failNext: { mode: 'malformed', count: 2 } });
    await expect((await post('/chat/completions', chatBody('x'))).json()).rejects.toThrow();
    const text = await (await post('/chat/completions', chatBody('x', { stream: true }))).text();
    expect(() => JSON.parse(text.slice('data: '.length))).toThrow();
  });

  it('hangs until the client gives up, and counts that as an aborted request', async () => {
    upstream.configure({ failNext: { mode: 'hang' } });
    const controller = new AbortController();
    const pending = post('/chat/completions', chatBody('x'), { signal: controller.signal });
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect(upstream.inFlight).toBe(1);
    controller.abort();
    await expect(pending).rejects.toThrow();
    await upstream.waitForAbort();
    expect(upstream.abortedRequests).toBe(1);
    expect(upstream.abortedStreams).toBe(0);
    await upstream.waitForIdle();
  });
});

describe('abort tracking', () => {
  it('counts streams whose client closed the connection before the end, and emits abort events', async () => {
    upstream.configure({ interTokenDelayMs: 20, tokens: 100 });
    const events: FakeUpstreamAbortEvent[] = [];
    const listener = (event: FakeUpstreamAbortEvent): void => {
      events.push(event);
    };
    upstream.on('abort', listener);
    const controller = new AbortController();
    const res = await post('/chat/completions', chatBody('x', { stream: true }), { signal: controller.signal });
    const reader = res.body!.getReader();
    await reader.read();
    expect(upstream.abortedStreams).toBe(0);
    controller.abort();
    await upstream.waitForAbort({ timeoutMs: 1_000 });
    expect(upstream.abortedStreams).toBe(1);
    expect(events).toEqual([{ path: '/v1/chat/completions', stream: true }]);
    upstream.off('abort', listener);
    // Completed calls are never counted.
    upstream.configure({ interTokenDelayMs: 0, tokens: 2 });
    await (await post('/chat/completions', chatBody('x', { stream: true }))).text();
    expect(upstream.abortedRequests).toBe(1);
  });

  it('waitForAbort rejects when nothing was aborted in time', async () => {
    await expect(upstream.waitForAbort({ timeoutMs: 50 })).rejects.toThrow(/0 aborted/);
  });

  it('tracks open connections, and close() destroys them', async () => {
    const other = await startFakeUpstream({ failNext: { mode: 'hang' } });
    const url = new URL(other.url);
    const failed = new Promise<Error>((resolve) => {
      const req = httpRequest({ host: url.hostname, port: url.port, path: '/v1/chat/completions', method: 'POST' });
      req.on('error', resolve);
      req.end(JSON.stringify(chatBody('x')));
    });
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect(other.openConnections).toBe(1);
    expect(other.totalConnections).toBe(1);
    await other.close();
    await expect(failed).resolves.toBeInstanceOf(Error);
    await other.close();
  });
});

describe('configure and reset', () => {
  it('reset() restores the start options and zeroes the counters', async () => {
    const other = await startFakeUpstream({ tokens: 2 });
    try {
      other.configure({ tokens: 9, latencyMs: 5, failNext: { status: 500 } });
      expect(other.options).toMatchObject({ tokens: 9, latencyMs: 5 });
      other.reset();
      expect(other.options).toMatchObject({ tokens: 2, latencyMs: 0, interTokenDelayMs: 0, streamUsage: true });
      const res = await fetch(`${other.url}/chat/completions`, { method: 'POST', body: JSON.stringify(chatBody('x')) });
      expect(res.status).toBe(200);
      expect(((await res.json()) as { usage: { completion_tokens: number } }).usage.completion_tokens).toBe(2);
      other.reset();
      expect([other.requestCount, other.requests.length, other.abortedRequests]).toEqual([0, 0, 0]);
    } finally {
      await other.close();
    }
  });
});
