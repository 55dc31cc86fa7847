import { once } from 'node:events';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { ModelProviderError, ProviderConfigError } from '../../contract/errors.js';
import type { ChatRequest, StreamPart, ToolCallPart } from '../../contract/model-provider.js';
import { ModelProviderRegistry } from '../../registry/provider-registry.js';
import { silentLogger } from '../../registry/provider-definition.js';
import { captureError, collectStream } from '../../testing/conformance.js';
import { FAKE_REFUSAL, fakeEmbedding, fakeReplyHash, fakeReplyLogprobs, fakeReplyText, startFakeUpstream } from '../../testing/fake-upstream.js';
import { startJsonUpstream, startRawUpstream } from '../../testing/raw-upstream.js';
import { encodeBase64Floats } from './embeddings.js';
import type { FakeUpstream, RecordedRequest } from '../../testing/fake-upstream.js';
import { openAICompatibleProviderDefinition } from './index.js';
import { OpenAICompatibleProvider } from './openai-compatible.provider.js';
import type { OpenAICompatibleProviderOptions } from './openai-compatible.options.js';
import { retryAfterSeconds } from './upstream-errors.js';

const CHAT: ChatRequest = { messages: [{ role: 'user', content: 'Hello there' }], maxTokens: 8 };
const CHAT_LONG: ChatRequest = { messages: [{ role: 'user', content: 'Hello there' }] };

const WEATHER = {
  name: 'get_weather',
  description: 'Current weather of a city',
  parameters: { type: 'object', properties: { city: { type: 'string' }, unit: { type: 'string' } }, required: ['city'] },
};
const TIME = { name: 'get_time', parameters: { type: 'object', properties: { zone: { type: 'string' } } } };
const ASK: ChatRequest = { messages: [{ role: 'user', content: 'Weather in Oslo?' }], tools: [WEATHER, TIME], temperature: 0 };

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

/** A raw upstream that answers every request with `chunks`, written 2 ms apart. */
const rawUpstream = (chunks: readonly string[], contentType = 'text/event-stream') => startRawUpstream(chunks, { contentType });

beforeAll(async () => {
  upstream = await startFakeUpstream();
});
afterEach(async () => {
  await Promise.all(providers.splice(0).map((p) => p.close()));
  upstream.reset();
});
afterAll(() => upstream.close());

describe('OpenAICompatibleProvider: requests', () => {
  it("sends the chat length bound as max_completion_tokens with maxTokensField (OpenAI's reasoning models); completions keep max_tokens", async () => {
    const p = provider({ maxTokensField: 'max_completion_tokens' });
    await p.chat({ messages: [{ role: 'user', content: 'Hi' }], maxTokens: 5 });
    expect(lastInference().body).toMatchObject({ max_completion_tokens: 5 });
    expect(lastInference().body).not.toHaveProperty('max_tokens');
    await collectStream(p.streamChat({ messages: [{ role: 'user', content: 'Hi' }], maxTokens: 6 }));
    expect(lastInference().body).toMatchObject({ max_completion_tokens: 6 });
    await p.complete({ prompt: 'Once', maxTokens: 3 });
    expect(lastInference().body).toMatchObject({ max_tokens: 3 });
    expect(lastInference().body).not.toHaveProperty('max_completion_tokens');
  });

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

  it("reads a refusal (message.refusal, delta.refusal) as the result's refusal and refusal parts", async () => {
    const p = provider();
    const refused = { messages: [{ role: 'user' as const, content: 'How do I pick a lock? [refuse]' }] };
    expect(await p.chat(refused)).toEqual({ text: '', finishReason: 'stop', usage: { promptTokens: 8, completionTokens: 3 }, refusal: FAKE_REFUSAL });
    const streamed = await collectStream(p.streamChat(refused));
    expect(streamed.text).toBe('');
    expect(streamed.refusal).toBe(FAKE_REFUSAL);
    expect(streamed.parts.filter((part) => part.type === 'refusal')).toHaveLength(3);
    expect(streamed.finish?.finishReason).toBe('stop');
    // An upstream answering a stream with one JSON body: the refusal is still a refusal part.
    const json = await startJsonUpstream({ choices: [{ index: 0, message: { role: 'assistant', content: null, refusal: 'No.' }, finish_reason: 'stop' }] });
    try {
      const once = await collectStream(provider({ baseUrl: json.url }).streamChat(refused));
      expect(once.refusal).toBe('No.');
    } finally {
      await json.close();
    }
    // A refusal that is not a string is a malformed answer.
    const bad = await startJsonUpstream({ choices: [{ index: 0, message: { role: 'assistant', content: null, refusal: 5 }, finish_reason: 'stop' }] });
    try {
      expect((await providerError(() => provider({ baseUrl: bad.url }).chat(refused))).code).toBe('upstream_error');
    } finally {
      await bad.close();
    }
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

    const { url, close } = await rawUpstream(
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
      await close();
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
    const { url, close } = await rawUpstream([
      'data: {"choices":[{"index":0,"text":"a","finish_reason":null}]}\n\n',
      'data: {"choices":[{"index":0,"text":"b","finish_reason":"stop"}]}',
    ]);
    try {
      const streamed = await collectStream(provider({ baseUrl: url }).streamComplete({ prompt: 'p' }));
      expect(streamed.text).toBe('ab');
      expect(streamed.finish?.finishReason).toBe('stop');
    } finally {
      await close();
    }
  });

  it('replays a JSON answer to a stream request (an upstream that ignores stream: true) as a stream', async () => {
    const { url, close } = await rawUpstream(
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
      await close();
    }
  });

  it('fails a stream that ends before any finish reason or [DONE]', async () => {
    const { url, close } = await rawUpstream(['data: {"choices":[{"index":0,"text":"a","finish_reason":null}]}\n\n']);
    try {
      const error = await providerError(() => collectStream(provider({ baseUrl: url }).streamComplete({ prompt: 'p' })));
      expect(error).toMatchObject({ code: 'upstream_error', isRetryable: true });
      expect(error.message).toContain('ended before it finished');
    } finally {
      await close();
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

  it("keeps an upstream 429's or 503's retry-after (seconds or an HTTP date), streamed or not", async () => {
    const p = provider();
    for (const call of [() => p.chat(CHAT), () => collectStream(p.streamChat(CHAT))]) {
      upstream.configure({ failNext: { status: 429, headers: { 'retry-after': '7' } } });
      expect((await providerError(call)).retryAfterSeconds).toBe(7);
      upstream.configure({ failNext: { status: 503, headers: { 'retry-after': new Date(Date.now() + 30_000).toUTCString() } } });
      expect((await providerError(call)).retryAfterSeconds).toBeGreaterThanOrEqual(28);
      upstream.configure({ failNext: { status: 500, headers: { 'retry-after': '7' } } });
      expect((await providerError(call)).retryAfterSeconds).toBeUndefined();
    }
    expect(retryAfterSeconds('nonsense')).toBeUndefined();
    expect(retryAfterSeconds('1.5')).toBe(2);
    expect(retryAfterSeconds('-3')).toBeUndefined();
    expect(retryAfterSeconds('999999')).toBe(3_600);
    expect(retryAfterSeconds(['3', '4'])).toBe(3);
  });

  it('keeps the details for the logs and gives a client-safe publicMessage: never the upstream address or a raw body', async () => {
    const p = provider();
    upstream.configure({ failNext: { status: 500, body: { error: { message: 'GPU on fire', type: 'server_error', param: null, code: null } } } });
    const json = await providerError(() => p.chat(CHAT));
    expect(json.message).toContain(upstream.url);
    expect(json.publicMessage).toBe('The model server returned an error (HTTP 500): GPU on fire');
    upstream.configure({ failNext: { status: 502, body: '<html>Traceback (most recent call last): File "/srv/app.py"</html>' } });
    const html = await providerError(() => p.chat(CHAT));
    expect(html.message).toContain('Traceback');
    expect(html.publicMessage).toBe('The model server returned an error (HTTP 502).');
    upstream.configure({ failNext: { status: 400, body: 'bad things at /srv/app.py' } });
    expect((await providerError(() => p.chat(CHAT))).publicMessage).toBe('The model server refused the request (HTTP 400).');
    upstream.configure({ failNext: { status: 429, body: { error: { message: 'slow down', type: 'x', param: null, code: null } } } });
    expect((await providerError(() => p.chat(CHAT))).publicMessage).toBe('slow down');
    upstream.configure({ failNext: { status: 403 } });
    expect((await providerError(() => p.chat(CHAT))).publicMessage).toBe("The model server refused this gateway's credentials (HTTP 403).");
    // A transport error has none: the API shows a generic text.
    const down = await providerError(() => provider({ baseUrl: 'http://127.0.0.1:1/v1' }).chat(CHAT));
    expect(down).toMatchObject({ code: 'upstream_unavailable', publicMessage: undefined });
    expect(down.message).toContain('127.0.0.1:1');
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

  it('an answer past maxResponseBytes is an upstream_error and its connection is closed; the provider goes on', async () => {
    const p = provider({ maxResponseBytes: 2_000, connections: 1 });
    upstream.configure({ tokens: 400 });
    const tooLarge = /larger than maxResponseBytes \(2000 bytes\)/;
    expect(await providerError(() => p.chat(CHAT_LONG))).toMatchObject({ code: 'upstream_error', isRetryable: false, message: expect.stringMatching(tooLarge) });
    // A stream of small events may be long; one event line may not.
    await expect(collectStream(p.streamChat(CHAT_LONG))).resolves.toMatchObject({ finish: { finishReason: 'stop' } });
    upstream.configure({ tokens: 8 });
    expect((await p.chat(CHAT)).finishReason).toBe('stop');
    const { url, close } = await rawUpstream([`data: {"choices":[{"index":0,"delta":{"content":"${'x'.repeat(3_000)}`]);
    try {
      const error = await providerError(() => collectStream(provider({ baseUrl: url, maxResponseBytes: 2_000 }).streamChat(CHAT)));
      expect(error.code).toBe('upstream_error');
    } finally {
      await close();
    }
    // An upstream answering JSON to a stream request is bounded too.
    const json = await startJsonUpstream({ choices: [{ index: 0, message: { role: 'assistant', content: 'y'.repeat(3_000) }, finish_reason: 'stop' }] });
    try {
      const error = await providerError(() => collectStream(provider({ baseUrl: json.url, maxResponseBytes: 2_000 }).streamChat(CHAT)));
      expect(error.message).toMatch(tooLarge);
    } finally {
      await json.close();
    }
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

describe('OpenAICompatibleProvider: tool calling', () => {
  it('declares the capability, and supportsTools: false turns it off', async () => {
    expect(provider().capabilities.tools).toBe(true);
    const off = provider({ supportsTools: false });
    expect(off.capabilities.tools).toBe(false);
  });

  it('sends tools, tool_choice and parallel_tool_calls in OpenAI form', async () => {
    await provider().chat({ ...ASK, toolChoice: { name: 'get_time' }, parallelToolCalls: false });
    const body = (lastInference().body as Record<string, unknown>);
    expect(body['tools']).toEqual([
      { type: 'function', function: WEATHER },
      { type: 'function', function: TIME },
    ]);
    expect(body['tool_choice']).toEqual({ type: 'function', function: { name: 'get_time' } });
    expect(body['parallel_tool_calls']).toBe(false);
    await provider().chat({ ...ASK, toolChoice: 'required' });
    expect((lastInference().body as Record<string, unknown>)['tool_choice']).toBe('required');
    await provider().chat({ messages: ASK.messages });
    expect(Object.keys((lastInference().body as Record<string, unknown>))).not.toContain('tools');
  });

  it('returns the calls of a non-stream answer, with finish reason tool_calls', async () => {
    const result = await provider().chat(ASK);
    const hash = fakeReplyHash('Weather in Oslo?');
    expect(result.finishReason).toBe('tool_calls');
    expect(result.text).toBe('');
    expect(result.toolCalls).toEqual([
      { id: `call_${hash}_0`, name: 'get_weather', arguments: JSON.stringify({ city: hash, unit: hash }) },
      { id: `call_${hash}_1`, name: 'get_time', arguments: JSON.stringify({ zone: hash }) },
    ]);
    expect(result.usage).toEqual({ promptTokens: expect.any(Number), completionTokens: 8 });
  });

  it('streams the calls as tool_call parts: id and name first, then argument pieces; joined they equal the non-stream calls', async () => {
    const p = provider();
    const whole = await p.chat(ASK);
    const streamed = await collectStream(p.streamChat(ASK));
    const toolParts = streamed.parts.filter((part): part is ToolCallPart => part.type === 'tool_call');
    expect(toolParts.length).toBeGreaterThan(2);
    expect(toolParts[0]).toMatchObject({ index: 0, id: expect.any(String), name: 'get_weather', arguments: '' });
    for (const part of toolParts.filter((x) => x.id === undefined)) expect(part.name).toBeUndefined();
    expect(streamed.toolCalls).toEqual(whole.toolCalls);
    expect(streamed.text).toBe('');
    expect(streamed.finish?.finishReason).toBe('tool_calls');
    expect(streamed.parts.at(-1)?.type).toBe('finish');
  });

  it('sends tool-call history in OpenAI form and gets text back after a tool result', async () => {
    const first = await provider().chat(ASK);
    const calls = first.toolCalls ?? [];
    const followUp: ChatRequest = {
      ...ASK,
      messages: [
        ...ASK.messages,
        { role: 'assistant', content: '', toolCalls: calls },
        ...calls.map((call) => ({ role: 'tool' as const, content: `result of ${call.name}`, toolCallId: call.id })),
      ],
    };
    const result = await provider().chat(followUp);
    expect(result.finishReason).toBe('stop');
    expect(result.toolCalls).toBeUndefined();
    expect(result.text.length).toBeGreaterThan(0);
    const messages = (lastInference().body as Record<string, unknown>)['messages'] as unknown[];
    expect(messages[1]).toEqual({
      role: 'assistant',
      content: null,
      tool_calls: calls.map((call) => ({ id: call.id, type: 'function', function: { name: call.name, arguments: call.arguments } })),
    });
    expect(messages[2]).toEqual({ role: 'tool', content: 'result of get_weather', tool_call_id: calls[0]?.id });
  });

  it('tool_choice none gets text', async () => {
    const result = await provider().chat({ ...ASK, toolChoice: 'none' });
    expect(result.finishReason).toBe('stop');
    expect(result.toolCalls).toBeUndefined();
  });

  it('accepts lenient upstream forms: missing ids, object arguments, the legacy function_call', async () => {
    const body = JSON.stringify({
      choices: [
        {
          index: 0,
          message: { role: 'assistant', content: null, tool_calls: [{ type: 'function', function: { name: 'f', arguments: { a: 1 } } }] },
          finish_reason: 'tool_calls',
        },
      ],
    });
    const raw = await startRawUpstream([body], { contentType: 'application/json' });
    try {
      const result = await provider({ baseUrl: raw.url }).chat(ASK);
      expect(result.toolCalls).toEqual([{ id: expect.stringMatching(/^call_[\w-]{24}$/), name: 'f', arguments: '{"a":1}' }]);
    } finally {
      await raw.close();
    }
    const legacy = await startJsonUpstream(
      { choices: [{ index: 0, message: { role: 'assistant', content: null, function_call: { name: 'g', arguments: '{}' } }, finish_reason: 'function_call' }] },
    );
    try {
      const result = await provider({ baseUrl: legacy.url }).chat(ASK);
      expect(result.finishReason).toBe('tool_calls');
      expect(result.toolCalls).toEqual([{ id: expect.stringMatching(/^call_/), name: 'g', arguments: '{}' }]);
    } finally {
      await legacy.close();
    }
  });

  it('replays the calls of a JSON answer to a stream request as parts', async () => {
    const raw = await startJsonUpstream(
      { choices: [{ index: 0, message: { role: 'assistant', content: null, tool_calls: [{ id: 'c1', type: 'function', function: { name: 'f', arguments: '{"x":2}' } }] }, finish_reason: 'tool_calls' }] },
    );
    try {
      const streamed = await collectStream(provider({ baseUrl: raw.url }).streamChat(ASK));
      expect(streamed.parts).toEqual([
        { type: 'tool_call', index: 0, id: 'c1', name: 'f', arguments: '{"x":2}' },
        { type: 'finish', finishReason: 'tool_calls', usage: expect.any(Object) },
      ]);
    } finally {
      await raw.close();
    }
  });

  it('a tool call without a name is a malformed upstream answer', async () => {
    const raw = await startJsonUpstream(
      { choices: [{ index: 0, message: { role: 'assistant', tool_calls: [{ id: 'c1', function: { arguments: '{}' } }] }, finish_reason: 'tool_calls' }] },
    );
    try {
      const error = await captureError(() => provider({ baseUrl: raw.url }).chat(ASK));
      expect(error).toBeInstanceOf(ModelProviderError);
      expect((error as ModelProviderError).code).toBe('upstream_error');
    } finally {
      await raw.close();
    }
  });
});

describe('OpenAICompatibleProvider: logprobs', () => {
  const body = (): Record<string, unknown> => lastInference().body as Record<string, unknown>;
  const chunk = (choice: Record<string, unknown>): string => `data: ${JSON.stringify({ choices: [{ index: 0, finish_reason: null, ...choice }] })}\n\n`;
  const entry = (token: string, logprob: number, top: unknown[] = []) => ({ token, logprob, bytes: [...Buffer.from(token)], top_logprobs: top });

  it('declares the capability, and supportsLogprobs: false turns it off', () => {
    expect(provider().capabilities.logprobs).toBe(true);
    expect(provider({ supportsLogprobs: false }).capabilities).toEqual({
      chat: true,
      completion: true,
      streaming: true,
      embeddings: true,
      tools: true,
      logprobs: false,
    });
  });

  it('asks chat upstreams for logprobs: true and top_logprobs, completions for the legacy number', async () => {
    const p = provider();
    await p.chat({ ...CHAT, logprobs: 3 });
    expect(body()).toMatchObject({ logprobs: true, top_logprobs: 3 });
    await collectStream(p.streamChat({ ...CHAT, logprobs: 0 }));
    expect(body()).toMatchObject({ stream: true, logprobs: true, top_logprobs: 0 });
    await p.complete({ prompt: 'Once', logprobs: 2 });
    expect(body()['logprobs']).toBe(2);
    expect(Object.keys(body())).not.toContain('top_logprobs');
    await collectStream(p.streamComplete({ prompt: 'Once', logprobs: 0 }));
    expect(body()['logprobs']).toBe(0);
  });

  it('sends nothing about logprobs unless asked, and the normalised field wins over extra', async () => {
    const p = provider();
    await p.chat(CHAT);
    expect(Object.keys(body())).not.toContain('logprobs');
    expect(Object.keys(body())).not.toContain('top_logprobs');
    await p.chat({ ...CHAT, extra: { logprobs: true, top_logprobs: 5, user: 'u' } });
    expect(body()).toMatchObject({ user: 'u' });
    expect(Object.keys(body())).not.toContain('logprobs');
    expect(Object.keys(body())).not.toContain('top_logprobs');
    await p.chat({ ...CHAT, logprobs: 1, extra: { logprobs: false, top_logprobs: 5 } });
    expect(body()).toMatchObject({ logprobs: true, top_logprobs: 1 });
    await p.complete({ prompt: 'Once', logprobs: 1, extra: { logprobs: 5, top_logprobs: 5 } });
    expect(body()['logprobs']).toBe(1);
    expect(Object.keys(body())).not.toContain('top_logprobs');
    await p.complete({ prompt: 'Once', extra: { logprobs: 5 } });
    expect(Object.keys(body())).not.toContain('logprobs');
  });

  it('parses the logprobs of non-stream chat and completion answers', async () => {
    const p = provider();
    const chat = await p.chat({ ...CHAT, logprobs: 2 });
    expect(chat).toEqual({
      text: fakeReplyText('Hello there', 8),
      finishReason: 'length',
      usage: { promptTokens: 3, completionTokens: 8 },
      logprobs: fakeReplyLogprobs('Hello there', 8, 2),
    });
    const completion = await p.complete({ prompt: 'Once', maxTokens: 3, logprobs: 1 });
    // The legacy form has no bytes.
    expect(completion.logprobs).toEqual(fakeReplyLogprobs('Once', 3, 1, false));
    expect((await p.complete({ prompt: 'Once', maxTokens: 3, logprobs: 0 })).logprobs).toEqual(fakeReplyLogprobs('Once', 3, 0, false));
    // Not asked for: none, and the answer is what it was.
    expect(await p.chat(CHAT)).toEqual({ text: fakeReplyText('Hello there', 8), finishReason: 'length', usage: { promptTokens: 3, completionTokens: 8 } });
  });

  it("puts each stream chunk's logprobs on its delta", async () => {
    const p = provider();
    const chat = await collectStream(p.streamChat({ ...CHAT, logprobs: 2 }));
    const deltas = chat.parts.filter((part) => part.type === 'delta');
    expect(deltas).toHaveLength(8);
    const expected = fakeReplyLogprobs('Hello there', 8, 2);
    deltas.forEach((part, i) => expect(part).toEqual({ type: 'delta', text: expected[i]?.token, logprobs: [expected[i]] }));
    expect(chat.logprobs).toEqual(expected);
    const completion = await collectStream(p.streamComplete({ prompt: 'Once', maxTokens: 3, logprobs: 1 }));
    expect(completion.logprobs).toEqual(fakeReplyLogprobs('Once', 3, 1, false));
    expect(completion.text).toBe(fakeReplyText('Once', 3));
    // Not asked for: no delta carries any.
    expect((await collectStream(p.streamChat(CHAT))).parts.filter((part) => part.type === 'delta' && 'logprobs' in part)).toEqual([]);
  });

  it('yields a delta for a chunk with logprobs but no text (part of a character), and counts its tokens', async () => {
    const { url, close } = await rawUpstream([
      chunk({ delta: { role: 'assistant', content: '' }, logprobs: null }),
      chunk({ delta: { content: '' }, logprobs: { content: [] } }),
      chunk({ delta: { content: '' }, logprobs: { content: [{ token: 'bytes:\\xf0\\x9f', logprob: -0.5, bytes: [240, 159], top_logprobs: [] }] } }),
      chunk({ delta: { content: '😀' }, logprobs: { content: [{ token: 'bytes:\\x98\\x80', logprob: -0.25, bytes: [152, 128], top_logprobs: [] }] } }),
      chunk({ delta: { content: ' ok' }, logprobs: { content: [entry(' ok', -1)] } }),
      chunk({ delta: {}, logprobs: null, finish_reason: 'stop' }),
      'data: [DONE]\n\n',
    ]);
    try {
      const streamed = await collectStream(provider({ baseUrl: url }).streamChat({ ...CHAT, logprobs: 0 }));
      expect(streamed.parts).toEqual([
        { type: 'delta', text: '', logprobs: [{ token: 'bytes:\\xf0\\x9f', logprob: -0.5, bytes: [240, 159], top: [] }] },
        { type: 'delta', text: '😀', logprobs: [{ token: 'bytes:\\x98\\x80', logprob: -0.25, bytes: [152, 128], top: [] }] },
        { type: 'delta', text: ' ok', logprobs: [{ token: ' ok', logprob: -1, bytes: [32, 111, 107], top: [] }] },
        // No usage from the upstream: one completion token per logprob entry.
        { type: 'finish', finishReason: 'stop', usage: { promptTokens: 3, completionTokens: 3 } },
      ]);
    } finally {
      await close();
    }
  });

  it('carries the logprobs of a JSON answer to a stream request on its single delta', async () => {
    const raw = await startJsonUpstream({
      choices: [{ index: 0, text: 'ab', logprobs: { tokens: ['a', 'b'], token_logprobs: [-1, -2], top_logprobs: null, text_offset: [0, 1] }, finish_reason: 'stop' }],
    });
    try {
      const streamed = await collectStream(provider({ baseUrl: raw.url }).streamComplete({ prompt: 'p', logprobs: 0 }));
      expect(streamed.parts).toEqual([
        { type: 'delta', text: 'ab', logprobs: [{ token: 'a', logprob: -1, top: [] }, { token: 'b', logprob: -2, top: [] }] },
        { type: 'finish', finishReason: 'stop', usage: expect.any(Object) },
      ]);
    } finally {
      await raw.close();
    }
  });

  it('gives no logprobs when the upstream ignores the request, or sends some that were not asked for', async () => {
    const ignored = await startJsonUpstream({ choices: [{ index: 0, message: { role: 'assistant', content: 'hi' }, logprobs: null, finish_reason: 'stop' }] });
    try {
      const result = await provider({ baseUrl: ignored.url }).chat({ ...CHAT, logprobs: 2 });
      expect(result.text).toBe('hi');
      expect(Object.keys(result)).not.toContain('logprobs');
    } finally {
      await ignored.close();
    }
    const { url, close } = await rawUpstream([
      chunk({ delta: { content: 'a' }, logprobs: null }),
      chunk({ delta: { content: 'b' }, logprobs: { content: [entry('b', -1)] } }),
      chunk({ delta: {}, finish_reason: 'stop' }),
      'data: [DONE]\n\n',
    ]);
    try {
      const p = provider({ baseUrl: url });
      expect((await collectStream(p.streamChat({ ...CHAT, logprobs: 1 }))).parts.slice(0, 2)).toEqual([
        { type: 'delta', text: 'a' },
        { type: 'delta', text: 'b', logprobs: [{ token: 'b', logprob: -1, bytes: [98], top: [] }] },
      ]);
      expect((await collectStream(p.streamChat(CHAT))).parts.slice(0, 2)).toEqual([
        { type: 'delta', text: 'a' },
        { type: 'delta', text: 'b' },
      ]);
    } finally {
      await close();
    }
  });

  it('malformed logprobs are a malformed upstream answer (upstream_error), stream and not', async () => {
    const bodies = [
      { choices: [{ index: 0, message: { role: 'assistant', content: 'a' }, logprobs: { content: 'a' }, finish_reason: 'stop' }] },
      { choices: [{ index: 0, message: { role: 'assistant', content: 'a' }, logprobs: { content: [{ token: 'a', logprob: 'high' }] }, finish_reason: 'stop' }] },
      { choices: [{ index: 0, message: { role: 'assistant', content: 'a' }, logprobs: { content: [entry('a', -1, [{ token: 5, logprob: -1 }])] }, finish_reason: 'stop' }] },
      { choices: [{ index: 0, message: { role: 'assistant', content: 'a' }, logprobs: 7, finish_reason: 'stop' }] },
    ];
    for (const answer of bodies) {
      const raw = await startJsonUpstream(answer);
      try {
        const error = await providerError(() => provider({ baseUrl: raw.url }).chat({ ...CHAT, logprobs: 1 }));
        expect(error, JSON.stringify(answer)).toMatchObject({ code: 'upstream_error', message: expect.stringContaining('malformed upstream response') });
      } finally {
        await raw.close();
      }
    }
    const legacy = await startJsonUpstream({ choices: [{ index: 0, text: 'ab', logprobs: { tokens: ['a', 'b'], token_logprobs: [-1] }, finish_reason: 'stop' }] });
    try {
      const error = await providerError(() => provider({ baseUrl: legacy.url }).complete({ prompt: 'p', logprobs: 0 }));
      expect(error).toMatchObject({ code: 'upstream_error', message: expect.stringMatching(/token_logprobs/) });
    } finally {
      await legacy.close();
    }
    const { url, close } = await rawUpstream([
      chunk({ delta: { content: 'a' }, logprobs: { content: [entry('a', -1)] } }),
      chunk({ delta: { content: 'b' }, logprobs: { content: [{ token: 'b', logprob: -1, bytes: 'b' }] } }),
      chunk({ delta: {}, finish_reason: 'stop' }),
      'data: [DONE]\n\n',
    ]);
    try {
      const error = await providerError(() => collectStream(provider({ baseUrl: url }).streamChat({ ...CHAT, logprobs: 0 })));
      expect(error).toMatchObject({ code: 'upstream_error', message: expect.stringMatching(/a stream event's choices\[0\]\.logprobs\.content\[0\]\.bytes/) });
    } finally {
      await close();
    }
  });
});

describe('OpenAICompatibleProvider: usage details', () => {
  it("reads the upstream's cached prompt tokens (usage.prompt_tokens_details.cached_tokens)", async () => {
    const raw = await startJsonUpstream(
      {
        choices: [{ index: 0, message: { role: 'assistant', content: 'hi' }, finish_reason: 'stop' }],
        usage: { prompt_tokens: 120, completion_tokens: 2, prompt_tokens_details: { cached_tokens: 96 } },
      },
    );
    try {
      expect((await provider({ baseUrl: raw.url }).chat(ASK)).usage).toEqual({ promptTokens: 120, completionTokens: 2, cachedPromptTokens: 96 });
    } finally {
      await raw.close();
    }
    // Without details: no claim either way.
    expect(Object.keys((await provider().chat({ messages: ASK.messages })).usage)).toEqual(['promptTokens', 'completionTokens']);
  });
});

describe('OpenAICompatibleProvider: embeddings', () => {
  it('POSTs {model, input, encoding_format: float, dimensions, extra} to /embeddings and returns the vectors in order', async () => {
    const result = await provider().embed({ input: ['a', 'b c'], dimensions: 5, extra: { user: 'u1' } });
    expect(upstream.requests.at(-1)).toMatchObject({
      method: 'POST',
      path: '/v1/embeddings',
      body: { model: 'upstream-model', input: ['a', 'b c'], encoding_format: 'float', dimensions: 5, user: 'u1' },
    });
    expect(result.embeddings).toEqual([fakeEmbedding('a', 5), fakeEmbedding('b c', 5)]);
    expect(result.usage.promptTokens).toBe(2);
  });

  it('reads base64 vectors, puts data in index order, and estimates usage when the upstream reports none', async () => {
    const raw = await startJsonUpstream({
      data: [
        { index: 1, embedding: encodeBase64Floats([0.5, -0.25]) },
        { index: 0, embedding: [1, 0] },
      ],
    });
    try {
      const result = await provider({ baseUrl: raw.url }).embed({ input: ['first', 'second!!'] });
      expect(result.embeddings).toEqual([
        [1, 0],
        [0.5, -0.25],
      ]);
      expect(result.usage.promptTokens).toBe(Math.ceil(13 / 4));
    } finally {
      await raw.close();
    }
  });

  it("the fake upstream answers a width it cannot make with OpenAI's 400, which stays a 400 (it used to crash on 1e8)", async () => {
    for (const dimensions of [100_000_000, 1e308, 0]) {
      const error = await captureError(() => provider().embed({ input: ['a'], dimensions }));
      expect(error, String(dimensions)).toMatchObject({ code: 'invalid_request', param: 'dimensions' });
    }
    expect((await provider().embed({ input: ['a'], dimensions: 8 })).embeddings[0]).toHaveLength(8);
  });

  it('rejects answers that do not fit the inputs as malformed upstream answers', async () => {
    const bodies = [
      {},
      { data: [{ index: 0, embedding: [1, 2] }] },
      { data: [{ index: 0, embedding: [1, 2] }, { index: 0, embedding: [1, 2] }] },
      { data: [{ index: 0, embedding: [1, 2] }, { index: 1, embedding: [1] }] },
      { data: [{ index: 0, embedding: [1, 2] }, { index: 1, embedding: ['x', 2] }] },
      { data: [{ index: 0, embedding: [] }, { index: 1, embedding: [] }] },
    ];
    for (const body of bodies) {
      const raw = await startJsonUpstream(body);
      try {
        const error = await captureError(() => provider({ baseUrl: raw.url }).embed({ input: ['a', 'b'] }));
        expect(error, JSON.stringify(body)).toBeInstanceOf(ModelProviderError);
        expect((error as ModelProviderError).code, JSON.stringify(body)).toBe('upstream_error');
      } finally {
        await raw.close();
      }
    }
  });

  it('maps upstream errors like other calls, and supportsEmbeddings: false is not_supported without a request', async () => {
    const raw = await startJsonUpstream({ error: { message: 'This model does not support embeddings', type: 'invalid_request_error' } }, 400);
    try {
      const error = await captureError(() => provider({ baseUrl: raw.url }).embed({ input: ['a'] }));
      expect(error).toMatchObject({ code: 'invalid_request', message: expect.stringMatching(/does not support embeddings/) });
    } finally {
      await raw.close();
    }
    const off = provider({ supportsEmbeddings: false });
    expect(off.capabilities.embeddings).toBe(false);
    expect(await captureError(() => off.embed({ input: ['a'] }))).toMatchObject({ code: 'not_supported', isRetryable: false });
    expect(upstream.requestCount).toBe(0);
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
    expect(p.capabilities).toEqual({ chat: true, completion: true, streaming: true, embeddings: true, tools: true, logprobs: true });
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
