import { once } from 'node:events';
import { createServer } from 'node:http';
import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { ModelProviderError, ProviderConfigError } from '../../contract/errors.js';
import type { ChatRequest, StreamPart } from '../../contract/model-provider.js';
import { ModelProviderRegistry } from '../../registry/provider-registry.js';
import { silentLogger } from '../../registry/provider-definition.js';
import { captureError, collectStream } from '../../testing/conformance.js';
import { fakeReplyText, startFakeUpstream } from '../../testing/fake-upstream.js';
import type { FakeUpstream, RecordedRequest } from '../../testing/fake-upstream.js';
import { openAICompatibleProviderDefinition } from './index.js';
import { OpenAICompatibleProvider } from './openai-compatible.provider.js';
import type { OpenAICompatibleProviderOptions } from './openai-compatible.options.js';

const CHAT: ChatRequest = { messages: [{ role: 'user', content: 'Hello there' }], maxTokens: 8 };

let upstream: FakeUpstream;
const providers: OpenAICompatibleProvider[] = [];

function provider(options: Partial<OpenAICompatibleProviderOptions> = {}, env: Record<string, string> = {}): OpenAICompatibleProvider {
  const p = new OpenAICompatibleProvider({ baseUrl: upstream.url, model: 'upstream-model', ...options }, { env });
  providers.push(p);
  return p;
}

function lastInference(): RecordedRequest {
  const request = upstream.requests.filter((r) => r.method === 'POST').at(-1);
  if (!request) throw new Error('no inference request recorded');
  return request;
}

async function providerError(operation: () => unknown): Promise<ModelProviderError> {
  const error = await captureError(operation);
  expect(error).toBeInstanceOf(ModelProviderError);
  return error as ModelProviderError;
}

/** A raw upstream that answers every request with `chunks`, written `gapMs` apart. */
async function rawUpstream(
  chunks: readonly string[],
  contentType = 'text/event-stream',
  gapMs = 2,
): Promise<{ url: string; server: Server }> {
  const server = createServer((req: IncomingMessage, res: ServerResponse) => {
    req.resume();
    res.writeHead(200, { 'content-type': contentType });
    let i = 0;
    const next = (): void => {
      if (i === chunks.length) {
        res.end();
        return;
      }
      res.write(chunks[i]);
      i += 1;
      setTimeout(next, gapMs);
    };
    next();
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/v1`, server };
}

beforeAll(async () => {
  upstream = await startFakeUpstream();
});
afterEach(async () => {
  await Promise.all(providers.splice(0).map((p) => p.close()));
  upstream.reset();
});
afterAll(() => upstream.close());

describe('OpenAICompatibleProvider: requests', () => {
  it('builds a snake_case OpenAI body, replaces the model and passes extra parameters through', async () => {
    const p = provider();
    await p.chat({
      messages: [
        { role: 'system', content: 'Be brief' },
        { role: 'user', content: 'Hi', name: 'ann' },
      ],
      maxTokens: 5,
      temperature: 0.5,
      topP: 0.9,
      seed: 42,
      stop: ['\n'],
      presencePenalty: 0.1,
      frequencyPenalty: 0.2,
      extra: { logit_bias: { '50256': -100 }, user: 'u-1', model: 'ignored', stream: true, response_format: { type: 'text' } },
    });
    expect(lastInference().path).toBe('/v1/chat/completions');
    expect(lastInference().body).toEqual({
      model: 'upstream-model',
      stream: false,
      messages: [
        { role: 'system', content: 'Be brief' },
        { role: 'user', content: 'Hi', name: 'ann' },
      ],
      max_tokens: 5,
      temperature: 0.5,
      top_p: 0.9,
      seed: 42,
      stop: ['\n'],
      presence_penalty: 0.1,
      frequency_penalty: 0.2,
      logit_bias: { '50256': -100 },
      user: 'u-1',
      response_format: { type: 'text' },
    });
  });

  it('asks for usage in streams and sends completions to /completions', async () => {
    const p = provider();
    await collectStream(p.streamComplete({ prompt: 'abc', extra: { stream_options: { foo: 1 } } }));
    expect(lastInference().path).toBe('/v1/completions');
    expect(lastInference().body).toEqual({
      model: 'upstream-model',
      stream: true,
      stream_options: { foo: 1, include_usage: true },
      prompt: 'abc',
    });
    expect(lastInference().headers['accept']).toBe('text/event-stream');
  });

  it('sends the API key as a bearer token, from apiKey or from the env variable named by apiKeyEnv, plus extra headers', async () => {
    upstream.configure({ apiKey: 'sk-secret' });
    const direct = provider({ apiKey: 'sk-secret', headers: { 'X-Tenant': 't1' } });
    await direct.chat(CHAT);
    expect(lastInference().headers['authorization']).toBe('Bearer sk-secret');
    expect(lastInference().headers['x-tenant']).toBe('t1');

    const fromEnv = provider({ apiKeyEnv: 'UPSTREAM_KEY' }, { UPSTREAM_KEY: 'sk-secret' });
    await expect(fromEnv.chat(CHAT)).resolves.toMatchObject({ finishReason: 'length' });
    expect(lastInference().headers['authorization']).toBe('Bearer sk-secret');
  });

  it('reuses keep-alive connections', async () => {
    const p = provider({ connections: 4 });
    for (let i = 0; i < 20; i += 1) await p.chat(CHAT);
    await Promise.all(Array.from({ length: 20 }, () => p.chat(CHAT)));
    for (let i = 0; i < 5; i += 1) await collectStream(p.streamChat(CHAT));
    expect(upstream.requestCount).toBe(45);
    expect(upstream.totalConnections).toBeLessThanOrEqual(4);
  });
});

describe('OpenAICompatibleProvider: responses', () => {
  it('parses a non-stream chat and completion reply', async () => {
    const p = provider();
    const chat = await p.chat({ messages: [{ role: 'user', content: 'Hello there' }] });
    expect(chat).toEqual({
      text: fakeReplyText('Hello there', 16),
      finishReason: 'stop',
      usage: { promptTokens: 3, completionTokens: 16 },
    });
    const completion = await p.complete({ prompt: 'Once', maxTokens: 3 });
    expect(completion).toEqual({
      text: fakeReplyText('Once', 3),
      finishReason: 'length',
      usage: { promptTokens: 1, completionTokens: 3 },
    });
  });

  it('streams deltas as they arrive and finishes with the upstream usage', async () => {
    upstream.configure({ interTokenDelayMs: 20, tokens: 5 });
    const p = provider();
    const started = Date.now();
    const arrivals: number[] = [];
    const parts: StreamPart[] = [];
    for await (const part of p.streamChat(CHAT)) {
      arrivals.push(Date.now() - started);
      parts.push(part);
    }
    expect(parts.filter((part) => part.type === 'delta').map((part) => (part.type === 'delta' ? part.text : ''))).toEqual(
      fakeReplyText('Hello there', 5).match(/\S+|\s\S+/g),
    );
    expect(parts.at(-1)).toEqual({ type: 'finish', finishReason: 'stop', usage: { promptTokens: 3, completionTokens: 5 } });
    // Not buffered: the first delta came long before the last one.
    expect((arrivals.at(-2) ?? 0) - (arrivals[0] ?? 0)).toBeGreaterThanOrEqual(50);
  });

  it('estimates usage when the upstream sends none', async () => {
    upstream.configure({ streamUsage: false, tokens: 6 });
    const p = provider();
    const streamed = await collectStream(p.streamChat({ messages: [{ role: 'user', content: 'x'.repeat(41) }] }));
    expect(streamed.finish).toEqual({ type: 'finish', finishReason: 'stop', usage: { promptTokens: 11, completionTokens: 6 } });

    const { url, server } = await rawUpstream(
      ['{"choices":[{"index":0,"message":{"role":"assistant","content":"12345678"},"finish_reason":"eos"}]}'],
      'application/json',
    );
    try {
      const noUsage = provider({ baseUrl: url });
      await expect(noUsage.chat({ messages: [{ role: 'user', content: 'abcde' }] })).resolves.toEqual({
        text: '12345678',
        finishReason: 'stop',
        usage: { promptTokens: 2, completionTokens: 2 },
      });
    } finally {
      server.close();
    }
  });

  it('parses SSE split across chunks, with CRLF, comments, keepalives and several events per chunk', async () => {
    const events = [
      ': ping\r\n\r\n',
      'data: {"choices":[{"index":0,"delta":{"role":"assistant","content":""},"finish_reason":null}]}\r\n\r\n',
      'data: {"choices":[{"index":0,"delta":{"content":"Hé"},"finish_reason":null}]}\r\n\r\n',
      'data: {"choices":[{"index":0,"delta":{"content":"llo 😀"},"finish_reason":null}]}\r\n\r\n' +
        'data: {"choices":[{"index":0,"delta":{"content":" world"},"finish_reason":null}]}\r\n\r\n',
      ': keepalive\r\n\r\n',
      'data: {"choices":[{"index":0,"delta":{},"finish_reason":"length"}]}\r\n\r\n',
      'data: {"choices":[],"usage":{"prompt_tokens":7,"completion_tokens":3,"total_tokens":10}}\r\n\r\n',
      'data: [DONE]\r\n\r\n',
    ];
    const bytes = Buffer.from(events.join(''), 'utf8');
    // Cut the byte stream into odd pieces: inside "data:", inside JSON, inside the emoji, between \r and \n.
    const pieces: string[] = [];
    const cuts = [3, 30, 101, 102, 180, 183, 185, 186, 250, 251, 300, 420, 421, 422, bytes.length];
    let from = 0;
    for (const cut of cuts) {
      pieces.push(bytes.subarray(from, cut).toString('latin1'));
      from = cut;
    }
    const server = createServer((req, res) => {
      req.resume();
      res.writeHead(200, { 'content-type': 'text/event-stream' });
      let i = 0;
      const next = (): void => {
        const piece = pieces[i];
        if (piece === undefined) {
          res.end();
          return;
        }
        res.write(Buffer.from(piece, 'latin1'));
        i += 1;
        setTimeout(next, 2);
      };
      next();
    });
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    try {
      const p = provider({ baseUrl: `http://127.0.0.1:${(server.address() as AddressInfo).port}/v1` });
      const streamed = await collectStream(p.streamChat(CHAT));
      expect(streamed.deltas).toEqual(['Hé', 'llo 😀', ' world']);
      expect(streamed.finish).toEqual({ type: 'finish', finishReason: 'length', usage: { promptTokens: 7, completionTokens: 3 } });
    } finally {
      server.close();
    }
  });

  it('accepts a stream that ends without [DONE] once a finish reason was sent', async () => {
    const { url, server } = await rawUpstream([
      'data: {"choices":[{"index":0,"text":"a","finish_reason":null}]}\n\n',
      'data: {"choices":[{"index":0,"text":"b","finish_reason":"stop"}]}',
    ]);
    try {
      const streamed = await collectStream(provider({ baseUrl: url }).streamComplete({ prompt: 'p' }));
      expect(streamed.text).toBe('ab');
      expect(streamed.finish?.finishReason).toBe('stop');
    } finally {
      server.close();
    }
  });

  it('replays a JSON answer to a stream request (an upstream that ignores stream: true) as a stream', async () => {
    const { url, server } = await rawUpstream(
      ['{"choices":[{"index":0,"text":"whole reply","finish_reason":"length"}],"usage":{"prompt_tokens":4,"completion_tokens":2}}'],
      'application/json; charset=utf-8',
    );
    try {
      const streamed = await collectStream(provider({ baseUrl: url }).streamComplete({ prompt: 'p' }));
      expect(streamed.parts).toEqual([
        { type: 'delta', text: 'whole reply' },
        { type: 'finish', finishReason: 'length', usage: { promptTokens: 4, completionTokens: 2 } },
      ]);
    } finally {
      server.close();
    }
  });

  it('fails a stream that ends before any finish reason or [DONE]', async () => {
    const { url, server } = await rawUpstream(['data: {"choices":[{"index":0,"text":"a","finish_reason":null}]}\n\n']);
    try {
      const error = await providerError(() => collectStream(provider({ baseUrl: url }).streamComplete({ prompt: 'p' })));
      expect(error).toMatchObject({ code: 'upstream_error', isRetryable: true });
      expect(error.message).toContain('ended before it finished');
    } finally {
      server.close();
    }
  });
});

describe('OpenAICompatibleProvider: errors', () => {
  it.each([
    { status: 429, code: 'rate_limited', retryable: true },
    { status: 500, code: 'upstream_error', retryable: true },
    { status: 503, code: 'upstream_error', retryable: true },
    { status: 400, code: 'invalid_request', retryable: false },
    { status: 404, code: 'invalid_request', retryable: false },
    { status: 422, code: 'invalid_request', retryable: false },
  ])('maps upstream $status to $code (retryable: $retryable) with the upstream message', async ({ status, code, retryable }) => {
    upstream.configure({
      failNext: { count: 2, status, body: { error: { message: `boom ${status}`, type: 'x', param: 'temperature', code: null } } },
    });
    const p = provider();
    for (const call of [() => p.chat(CHAT), () => collectStream(p.streamChat(CHAT))]) {
      const error = await providerError(call);
      expect(error.code).toBe(code);
      expect(error.isRetryable).toBe(retryable);
      expect(error.upstreamStatus).toBe(status);
      expect(error.message).toContain(`boom ${status}`);
      expect(error.param).toBe('temperature');
    }
  });

  it('maps 401/403 to a non-retryable upstream_error about credentials', async () => {
    upstream.configure({ apiKey: 'right' });
    const error = await providerError(() => provider({ apiKey: 'wrong' }).chat(CHAT));
    expect(error).toMatchObject({ code: 'upstream_error', isRetryable: false, upstreamStatus: 401 });
    expect(error.message).toContain('upstream rejected credentials');
    expect(error.message).toContain('Incorrect API key');

    upstream.configure({ apiKey: undefined, failNext: { status: 403 } });
    expect(await providerError(() => provider().chat(CHAT))).toMatchObject({ code: 'upstream_error', isRetryable: false });
  });

  it('reads FastAPI/vLLM style and plain-text error bodies, and detects context length errors', async () => {
    const p = provider();
    upstream.configure({ failNext: { status: 422, body: { detail: [{ loc: ['body', 'max_tokens'], msg: 'must be positive' }] } } });
    expect(await providerError(() => p.chat(CHAT))).toMatchObject({
      code: 'invalid_request',
      param: 'max_tokens',
      message: 'must be positive',
    });
    upstream.configure({ failNext: { status: 502, body: 'Bad Gateway from a proxy' } });
    expect((await providerError(() => p.chat(CHAT))).message).toContain('Bad Gateway from a proxy');
    upstream.configure({
      failNext: {
        status: 400,
        body: { error: { message: "This model's maximum context length is 4096 tokens", code: 'context_length_exceeded' } },
      },
    });
    expect(await providerError(() => p.chat(CHAT))).toMatchObject({ code: 'context_length_exceeded', isRetryable: false });
  });

  it('maps malformed JSON to upstream_error', async () => {
    const p = provider();
    upstream.configure({ failNext: { mode: 'malformed' } });
    expect(await providerError(() => p.chat(CHAT))).toMatchObject({ code: 'upstream_error' });
    upstream.configure({ failNext: { mode: 'malformed' } });
    expect(await providerError(() => collectStream(p.streamChat(CHAT)))).toMatchObject({ code: 'upstream_error' });
    // The provider still works afterwards.
    await expect(p.chat(CHAT)).resolves.toMatchObject({ finishReason: 'length' });
  });

  it('maps a refused connection to a retryable upstream_unavailable', async () => {
    const closed = await startFakeUpstream();
    const url = closed.url;
    await closed.close();
    const p = provider({ baseUrl: url });
    for (const call of [() => p.chat(CHAT), () => collectStream(p.streamChat(CHAT))]) {
      const error = await providerError(call);
      expect(error).toMatchObject({ code: 'upstream_unavailable', isRetryable: true });
      expect(error.message).toContain('ECONNREFUSED');
    }
  });

  it('maps an unknown host to upstream_unavailable', async () => {
    const error = await providerError(() =>
      provider({ baseUrl: 'http://does-not-exist.invalid/v1', connectTimeoutMs: 2_000 }).chat(CHAT),
    );
    expect(['upstream_unavailable', 'upstream_timeout']).toContain(error.code);
    expect(error.isRetryable).toBe(true);
  });

  it('maps a reset socket, before and during a stream, to upstream_unavailable', async () => {
    const p = provider();
    upstream.configure({ failNext: { mode: 'reset' } });
    expect(await providerError(() => p.chat(CHAT))).toMatchObject({ code: 'upstream_unavailable', isRetryable: true });

    upstream.configure({ failNext: { mode: 'reset-mid-stream' } });
    const deltas: string[] = [];
    const error = await providerError(async () => {
      for await (const part of p.streamChat(CHAT)) if (part.type === 'delta') deltas.push(part.text);
    });
    expect(error.code).toBe('upstream_unavailable');
    expect(deltas.length).toBeGreaterThan(0);
    await expect(p.chat(CHAT)).resolves.toMatchObject({ finishReason: 'length' });
  });

  // undici's headers/body timers have a resolution of about one second (its "fast timers").
  it('maps a slow first byte to upstream_timeout (timeoutMs)', async () => {
    upstream.configure({ latencyMs: 3_000 });
    const p = provider({ timeoutMs: 200 });
    const started = Date.now();
    const [chat, stream] = await Promise.all([
      providerError(() => p.chat(CHAT)),
      providerError(() => collectStream(p.streamChat(CHAT))),
    ]);
    expect(chat).toMatchObject({ code: 'upstream_timeout', isRetryable: true });
    expect(chat.message).toContain('response headers');
    expect(stream).toMatchObject({ code: 'upstream_timeout', isRetryable: true });
    expect(Date.now() - started).toBeLessThan(2_000);
    await upstream.waitForAbort({ count: 2 });
  });

  it('maps a stalled stream to upstream_timeout (idleTimeoutMs)', async () => {
    upstream.configure({ interTokenDelayMs: 3_000, tokens: 3 });
    const p = provider({ idleTimeoutMs: 200 });
    const started = Date.now();
    const error = await providerError(() => collectStream(p.streamChat(CHAT)));
    expect(error).toMatchObject({ code: 'upstream_timeout', isRetryable: true });
    expect(error.message).toContain('next body chunk');
    expect(Date.now() - started).toBeLessThan(2_000);
    await upstream.waitForAbort();
  });

  it("throws 'not_supported' for completions when supportsCompletions is false", async () => {
    const p = provider({ supportsCompletions: false });
    expect(p.capabilities.completion).toBe(false);
    expect(await providerError(() => p.complete({ prompt: 'x' }))).toMatchObject({ code: 'not_supported', isRetryable: false });
    expect(await providerError(() => collectStream(p.streamComplete({ prompt: 'x' })))).toMatchObject({
      code: 'not_supported',
    });
    expect(upstream.requestCount).toBe(0);
  });
});

describe('OpenAICompatibleProvider: aborts', () => {
  it('a pre-aborted signal rejects without calling the upstream', async () => {
    const p = provider();
    const signal = AbortSignal.abort();
    expect(await providerError(() => p.chat(CHAT, { signal }))).toMatchObject({ code: 'aborted', isRetryable: false });
    expect(await providerError(() => collectStream(p.streamChat(CHAT, { signal })))).toMatchObject({ code: 'aborted' });
    expect(upstream.requestCount).toBe(0);
  });

  it('aborting a non-stream call closes the upstream connection', async () => {
    upstream.configure({ latencyMs: 2_000 });
    const p = provider();
    const controller = new AbortController();
    const pending = p.chat(CHAT, { signal: controller.signal });
    await waitUntil(() => upstream.inFlight === 1);
    controller.abort();
    expect(await providerError(() => pending)).toMatchObject({ code: 'aborted' });
    await upstream.waitForAbort({ timeoutMs: 1_000 });
    expect(upstream.abortedRequests).toBe(1);
  });

  it('aborting mid-stream ends the stream and closes the upstream connection', async () => {
    upstream.configure({ interTokenDelayMs: 50, tokens: 100 });
    const p = provider();
    const controller = new AbortController();
    const deltas: string[] = [];
    const started = Date.now();
    const error = await providerError(async () => {
      for await (const part of p.streamChat(CHAT, { signal: controller.signal })) {
        if (part.type === 'delta') deltas.push(part.text);
        if (deltas.length === 2) setTimeout(() => controller.abort(), 10);
      }
    });
    expect(error.code).toBe('aborted');
    expect(deltas.length).toBeLessThan(5);
    expect(Date.now() - started).toBeLessThan(1_000);
    await upstream.waitForAbort({ timeoutMs: 1_000 });
    expect(upstream.abortedStreams).toBe(1);
  });

  it('a consumer that stops iterating early closes the upstream connection', async () => {
    upstream.configure({ interTokenDelayMs: 50, tokens: 100 });
    const p = provider({ connections: 1 });
    for await (const part of p.streamChat(CHAT)) {
      expect(part.type).toBe('delta');
      break;
    }
    await upstream.waitForAbort({ timeoutMs: 1_000 });
    expect(upstream.abortedStreams).toBe(1);
    // The single pooled connection is free again.
    upstream.configure({ interTokenDelayMs: 0, tokens: 4 });
    await expect(p.chat(CHAT)).resolves.toMatchObject({ finishReason: 'stop' });
  });

  it('a completed stream leaves its connection open for reuse', async () => {
    const p = provider({ connections: 1 });
    for (let i = 0; i < 5; i += 1) await collectStream(p.streamChat(CHAT));
    expect(upstream.abortedRequests).toBe(0);
    expect(upstream.totalConnections).toBe(1);
  });
});

describe('OpenAICompatibleProvider: health and lifecycle', () => {
  it('is healthy when GET /models answers 2xx, and caches the result', async () => {
    const p = provider({ healthCacheMs: 60_000 });
    await expect(p.health()).resolves.toEqual({ healthy: true });
    upstream.configure({ unhealthy: true });
    await expect(p.health()).resolves.toEqual({ healthy: true });
    expect(upstream.requests.filter((r) => r.path === '/v1/models')).toHaveLength(1);
  });

  it('is unhealthy when the upstream answers an error, is down, or is too slow', async () => {
    upstream.configure({ unhealthy: true });
    await expect(provider({ healthCacheMs: 0 }).health()).resolves.toMatchObject({ healthy: false, detail: expect.stringContaining('503') });

    const down = await startFakeUpstream();
    const url = down.url;
    await down.close();
    const result = await provider({ baseUrl: url }).health();
    expect(result.healthy).toBe(false);
    expect(result.detail).toContain('ECONNREFUSED');

    const silent = createServer(() => undefined);
    silent.listen(0, '127.0.0.1');
    await once(silent, 'listening');
    try {
      const started = Date.now();
      const slow = await provider({ baseUrl: `http://127.0.0.1:${(silent.address() as AddressInfo).port}/v1`, healthTimeoutMs: 150 }).health();
      expect(slow.healthy).toBe(false);
      expect(Date.now() - started).toBeLessThan(1_000);
    } finally {
      silent.closeAllConnections();
      silent.close();
    }
  });

  it('close() is idempotent; calls after it fail as unavailable', async () => {
    const p = provider();
    await p.chat(CHAT);
    await Promise.all([p.close(), p.close()]);
    expect(await providerError(() => p.chat(CHAT))).toMatchObject({ code: 'upstream_unavailable' });
    await expect(p.health()).resolves.toMatchObject({ healthy: false });
  });
});

describe('openAICompatibleProviderDefinition', () => {
  const registry = new ModelProviderRegistry([openAICompatibleProviderDefinition]);
  const context = { modelName: 'public-model', env: { KEY: 'k' }, baseDir: '/', logger: silentLogger };

  it('is created through the registry, with defaults applied', async () => {
    const p = registry.create('openai-compatible', { baseUrl: upstream.url, model: 'm', apiKeyEnv: 'KEY' }, context);
    providers.push(p as OpenAICompatibleProvider);
    expect(p.kind).toBe('openai-compatible');
    expect(p.label).toBe(`openai-compatible(${upstream.url}, m)`);
    expect(p.capabilities).toEqual({ chat: true, completion: true, streaming: true, embeddings: true, tools: true });
    await expect(p.chat(CHAT)).resolves.toMatchObject({ finishReason: 'length' });
  });

  it('rejects invalid options with a message naming the field', () => {
    expect(() => registry.create('openai-compatible', { model: 'm' }, context)).toThrow(/baseUrl/);
    expect(() => registry.create('openai-compatible', { baseUrl: 'ftp://x/v1', model: 'm' }, context)).toThrow(ProviderConfigError);
    expect(() => registry.create('openai-compatible', { baseUrl: 'http://u:p@x/v1', model: 'm' }, context)).toThrow(/credentials/);
    expect(() => registry.create('openai-compatible', { baseUrl: upstream.url, model: 'm', connections: 0 }, context)).toThrow(
      /connections/,
    );
    expect(() => registry.create('openai-compatible', { baseUrl: upstream.url, model: 'm', bogus: 1 }, context)).toThrow(/bogus/);
    expect(() => registry.create('openai-compatible', { baseUrl: upstream.url, model: 'm', apiKeyEnv: 'MISSING' }, context)).toThrow(
      /MISSING is not set/,
    );
    expect(() =>
      registry.create('openai-compatible', { baseUrl: upstream.url, model: 'm', apiKey: 'a', apiKeyEnv: 'KEY' }, context),
    ).toThrow(/mutually exclusive/);
  });
});

async function waitUntil(condition: () => boolean, timeoutMs = 2_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}
