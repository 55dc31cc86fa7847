import { connect } from 'node:net';
import { startFakeUpstream, type FakeUpstream } from '@infer/model-providers/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type ApiServer, startApiServer } from '../support/api-server.js';
import { fakeModelsYaml } from '../support/load.js';

interface ErrorBody {
  error: { message: string; type: string; param: string | null; code: string | null };
}

/** Bad input gets an OpenAI-shaped error with the right status, never a stack trace, never a crash. */
describe('errors', () => {
  let server: ApiServer;
  let upstream: FakeUpstream;

  beforeAll(async () => {
    upstream = await startFakeUpstream({ tokens: 4 });
    server = await startApiServer({
      env: { BODY_LIMIT_BYTES: '4096', CACHE_ENABLED: 'false' },
      // `plain`: an upstream declared without tool calling, embeddings or logprobs.
      modelsYaml:
        fakeModelsYaml(upstream.url, 'm', { timeoutMs: 1500 }) +
        `  - name: plain\n    deployments:\n      - provider: openai-compatible\n        baseUrl: ${upstream.url}\n        model: fake\n        supportsTools: false\n        supportsEmbeddings: false\n        supportsLogprobs: false\n` +
        // `busy`: the built-in model with one sequence and no queue.
        `  - name: busy\n    deployments:\n      - provider: llama-cpp\n        modelPath: builtin:tiny-llama\n        sequences: 1\n        maxQueue: 0\n`,
    });
  });

  afterAll(async () => {
    await server?.stop();
    await upstream?.close();
  });

  async function call(path: string, init?: RequestInit): Promise<{ status: number; body: ErrorBody; text: string; headers: Headers }> {
    const res = await fetch(`${server.url}${path}`, init);
    const text = await res.text();
    expect(res.headers.get('content-type')).toMatch(/application\/json/);
    expect(text).not.toMatch(/\n\s+at /); // no stack traces
    const body = JSON.parse(text) as ErrorBody;
    expect(Object.keys(body.error).sort()).toEqual(['code', 'message', 'param', 'type']);
    return { status: res.status, body, text, headers: res.headers };
  }

  const post = (path: string, body: unknown, headers: Record<string, string> = {}) =>
    call(path, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body: typeof body === 'string' ? body : JSON.stringify(body) });

  it('400 for a missing required field, naming the param', async () => {
    const { status, body } = await post('/v1/chat/completions', { model: 'm' });
    expect(status).toBe(400);
    expect(body.error).toMatchObject({ type: 'invalid_request_error', param: 'messages' });
  });

  it('400 for out-of-range and wrongly typed parameters', async () => {
    const hot = await post('/v1/chat/completions', { model: 'm', messages: [{ role: 'user', content: 'x' }], temperature: 5 });
    expect(hot.status).toBe(400);
    expect(hot.body.error.param).toBe('temperature');
    const typed = await post('/v1/completions', { model: 'm', prompt: 'x', max_tokens: '5' });
    expect(typed.status).toBe(400);
    expect(typed.body.error.param).toBe('max_tokens');
    const role = await post('/v1/chat/completions', { model: 'm', messages: [{ role: 'wizard', content: 'x' }] });
    expect(role.status).toBe(400);
    expect(role.body.error.param).toBe('messages[0].role');
    const empty = await post('/v1/chat/completions', { model: 'm', messages: [] });
    expect(empty.status).toBe(400);
  });

  it('400 naming what is wrong with a value that can take several shapes', async () => {
    const prompts = await post('/v1/completions', { model: 'm', prompt: Array.from({ length: 33 }, () => 'a') });
    expect(prompts.status).toBe(400);
    expect(prompts.body.error).toMatchObject({ param: 'prompt', message: "Invalid body 'prompt': must NOT have more than 32 items" });
    const image = await post('/v1/chat/completions', { model: 'm', messages: [{ role: 'user', content: [{ type: 'image_url', image_url: { url: 'x' } }] }] });
    expect(image.status).toBe(400);
    expect(image.body.error.param).toBe('messages[0].content[0].type');
    expect(image.body.error.message).toMatch(/allowed values \(text, refusal\)/);
  });

  it('400 for what tool calling cannot serve, without calling the upstream', async () => {
    const before = upstream.requestCount;
    const messages = [{ role: 'user', content: 'x' }];
    const tool = { type: 'function', function: { name: 'f', parameters: { type: 'object' } } };
    const history = [
      { role: 'user', content: 'x' },
      { role: 'assistant', content: null, tool_calls: [{ id: 'c1', type: 'function', function: { name: 'f', arguments: '{}' } }] },
      { role: 'tool', content: 'done', tool_call_id: 'c1' },
    ];
    const cases: Array<[body: Record<string, unknown>, param: string, code: string | null, message: RegExp]> = [
      // A model whose provider does no tool calling: refused rather than answered without the calls.
      [{ model: 'plain', messages, tools: [tool], stream: true }, 'tools', 'unsupported_parameter', /^The model 'plain' does not support tool calling/],
      [{ model: 'plain', messages: history }, 'messages', 'unsupported_parameter', /cannot hold tool calls/],
      // OpenAI's deprecated function calling.
      [{ model: 'm', messages, functions: [{ name: 'f', parameters: {} }] }, 'functions', 'unsupported_parameter', /use 'tools'/],
      [{ model: 'm', messages, function_call: 'auto' }, 'function_call', 'unsupported_parameter', /use 'tool_choice'/],
      // Malformed tools and tool messages.
      // (schema errors carry the code 'invalid_request')
      [{ model: 'm', messages, tools: 'f' }, 'tools', 'invalid_request', /must be array/],
      // Other tool types: the type is what is wrong (not a missing 'function').
      [{ model: 'm', messages, tools: [{ type: 'custom', custom: { name: 'x' } }] }, 'tools[0].type', 'invalid_request', /allowed values \(function\)/],
      [{ model: 'm', messages, tools: [{ type: 'function' }] }, 'tools[0].function', null, /needs 'function'/],
      [{ model: 'm', messages, tools: [{ type: 'function', function: { name: 'bad name!' } }] }, 'tools[0].function.name', 'invalid_request', /pattern/],
      [{ model: 'm', messages, tools: [tool, tool] }, 'tools[1].function.name', null, /used twice/],
      [{ model: 'm', messages, tool_choice: 'required' }, 'tool_choice', null, /only allowed when 'tools' are specified/],
      [{ model: 'm', messages, tools: [tool], tool_choice: { type: 'function', function: { name: 'g' } } }, 'tool_choice.function.name', null, /not in 'tools'/],
      [{ model: 'm', messages: [...messages, { role: 'tool', content: 'r' }] }, 'messages[1].tool_call_id', null, /needs 'tool_call_id'/],
      [{ model: 'm', messages: [{ role: 'user', content: 'x', tool_call_id: 'c1' }] }, 'messages[0].tool_call_id', null, /only messages with role 'tool'/],
      [{ model: 'm', messages: [{ role: 'user', content: 'x', tool_calls: history[1]?.tool_calls }] }, 'messages[0].tool_calls', null, /only assistant messages/],
      [{ model: 'm', messages: [{ role: 'assistant', content: null, tool_calls: [{ id: 'c1', type: 'function', function: { name: 'f' } }] }] }, 'messages[0].tool_calls[0].function.arguments', 'invalid_request', /required property 'arguments'/],
    ];
    for (const [body, param, code, message] of cases) {
      const res = await post('/v1/chat/completions', body);
      expect(res.status, JSON.stringify(body)).toBe(400);
      expect(res.body.error, JSON.stringify(body)).toMatchObject({ type: 'invalid_request_error', param, code });
      expect(res.body.error.message, JSON.stringify(body)).toMatch(message);
    }
    expect(upstream.requestCount).toBe(before);
    // Asking for nothing is fine on any model: an empty list, or tool_choice "none" without tools.
    for (const body of [
      { model: 'plain', messages, tools: [] },
      { model: 'plain', messages, tool_choice: 'none' },
      // tool_choice "none" asks for text, which a model without tool calling gives: its tools are dropped.
      { model: 'plain', messages, tools: [tool], tool_choice: 'none' },
    ]) {
      const ok = await fetch(`${server.url}/v1/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
      expect(ok.status, JSON.stringify(body)).toBe(200);
    }
    expect(Object.keys((upstream.requests.at(-1)?.body ?? {}) as object)).not.toContain('tool_choice');
    expect(Object.keys((upstream.requests.at(-1)?.body ?? {}) as object)).not.toContain('tools');
  });

  it('400 for logprobs a model cannot give and for malformed logprobs fields, without calling the upstream', async () => {
    const before = upstream.requestCount;
    const messages = [{ role: 'user', content: 'x' }];
    const cases: Array<[path: string, body: Record<string, unknown>, param: string, code: string | null, message: RegExp]> = [
      ['/v1/chat/completions', { model: 'plain', messages, logprobs: true }, 'logprobs', 'unsupported_parameter', /^The model 'plain' does not return log probabilities/],
      ['/v1/chat/completions', { model: 'busy', messages, logprobs: true, top_logprobs: 3, stream: true }, 'logprobs', 'unsupported_parameter', /'busy'/],
      ['/v1/completions', { model: 'busy', prompt: 'x', logprobs: 0 }, 'logprobs', 'unsupported_parameter', /'busy'/],
      ['/v1/chat/completions', { model: 'm', messages, top_logprobs: 2 }, 'top_logprobs', null, /needs 'logprobs' set to true/],
      ['/v1/chat/completions', { model: 'm', messages, logprobs: false, top_logprobs: 2 }, 'top_logprobs', null, /needs 'logprobs'/],
      ['/v1/chat/completions', { model: 'm', messages, logprobs: true, top_logprobs: 21 }, 'top_logprobs', 'invalid_request', /must be <= 20/],
      ['/v1/chat/completions', { model: 'm', messages, logprobs: 'yes' }, 'logprobs', 'invalid_request', /must be boolean/],
      ['/v1/completions', { model: 'm', prompt: 'x', logprobs: true }, 'logprobs', 'invalid_request', /must be integer/],
      ['/v1/completions', { model: 'm', prompt: 'x', logprobs: -1 }, 'logprobs', 'invalid_request', /must be >= 0/],
    ];
    for (const [path, body, param, code, message] of cases) {
      const res = await post(path, body);
      expect(res.status, JSON.stringify(body)).toBe(400);
      expect(res.body.error, JSON.stringify(body)).toMatchObject({ type: 'invalid_request_error', param, code });
      expect(res.body.error.message, JSON.stringify(body)).toMatch(message);
    }
    expect(upstream.requestCount).toBe(before);
  });

  it('400 for malformed embeddings requests and for a model without embeddings, without calling the upstream', async () => {
    const before = upstream.requestCount;
    const cases: Array<[body: unknown, status: number, param: string | null, message: RegExp]> = [
      [{ model: 'm' }, 400, 'input', /required property 'input'/],
      [{ model: 'm', input: '' }, 400, 'input', /NOT have fewer than 1 characters/],
      [{ model: 'm', input: [] }, 400, 'input', /NOT have fewer than 1 items/],
      [{ model: 'm', input: [[1, 2, 3]] }, 400, 'input[0]', /must be string/],
      [{ model: 'm', input: 'x', encoding_format: 'int8' }, 400, 'encoding_format', /allowed values/],
      [{ model: 'm', input: 'x', dimensions: 0 }, 400, 'dimensions', /must be >= 1/],
      [{ model: 'plain', input: 'x' }, 400, 'model', /does not support embeddings/],
      [{ model: 'nope', input: 'x' }, 404, 'model', /does not exist/],
    ];
    for (const [body, status, param, message] of cases) {
      const res = await post('/v1/embeddings', body);
      expect(res.status, JSON.stringify(body)).toBe(status);
      expect(res.body.error.param, JSON.stringify(body)).toBe(param);
      expect(res.body.error.message, JSON.stringify(body)).toMatch(message);
    }
    expect(upstream.requestCount).toBe(before);
    const ok = await fetch(`${server.url}/v1/embeddings`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ model: 'm', input: 'x', user: 'u1', encoding_format: 'base64' }),
    });
    expect(ok.status).toBe(200);
    expect(upstream.requestCount).toBe(before + 1);
    // The upstream gets floats (the API encodes base64 itself) and the pass-through fields.
    expect(upstream.requests.at(-1)?.body).toEqual({ model: 'fake', input: ['x'], encoding_format: 'float', user: 'u1' });
  });

  it('429 rate_limit_error when an in-process model is saturated (sequences busy, queue full), not an unbounded wait', async () => {
    const body = JSON.stringify({ model: 'busy', prompt: 'Once upon a time', max_tokens: 200, temperature: 0 });
    const send = () => fetch(`${server.url}/v1/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body });
    const responses = await Promise.all([send(), send(), send()]);
    const statuses = responses.map((r) => r.status).sort();
    expect(statuses).toEqual([200, 429, 429]);
    for (const res of responses.filter((r) => r.status === 429)) {
      const error = ((await res.json()) as ErrorBody).error;
      expect(error).toMatchObject({ type: 'rate_limit_error' });
      expect(error.message).toMatch(/overloaded/);
    }
    // Once the running request is done the model serves again.
    expect((await send()).status).toBe(200);
  });

  it('400 for malformed JSON', async () => {
    const { status, body } = await post('/v1/chat/completions', '{"model": "m", "messages": [');
    expect(status).toBe(400);
    expect(body.error.type).toBe('invalid_request_error');
  });

  it('404 for an unknown model, in the OpenAI shape', async () => {
    const { status, body } = await post('/v1/completions', { model: 'nope', prompt: 'x' });
    expect(status).toBe(404);
    expect(body.error).toEqual({
      message: "The model 'nope' does not exist or you do not have access to it.",
      type: 'invalid_request_error',
      param: 'model',
      code: 'model_not_found',
    });
    expect((await call('/v1/models/nope')).status).toBe(404);
  });

  it('404 for an unknown route', async () => {
    const { status, body } = await call('/v1/nothing-here');
    expect(status).toBe(404);
    expect(body.error.type).toBe('invalid_request_error');
  });

  it('413 for a body over the limit', async () => {
    const { status, body } = await post('/v1/chat/completions', { model: 'm', messages: [{ role: 'user', content: 'x'.repeat(10_000) }] });
    expect(status).toBe(413);
    expect(body.error.code).toBe('request_too_large');
  });

  it('400 for GET /predict without input_text', async () => {
    const { status, body } = await call('/predict');
    expect(status).toBe(400);
    expect(body.error.param).toBe('input_text');
  });

  it('502 with the upstream message when the upstream fails, 504 when it hangs', async () => {
    upstream.configure({ failNext: { count: 10, status: 500, body: { error: { message: 'GPU on fire', type: 'server_error', param: null, code: null } } } });
    const failed = await post('/v1/chat/completions', { model: 'm', messages: [{ role: 'user', content: 'x' }] });
    expect(failed.status).toBe(502);
    // The upstream's own JSON message, never its address or a raw (HTML, traceback) body.
    expect(failed.body.error.message).toBe('The model server returned an error (HTTP 500): GPU on fire');
    upstream.configure({ failNext: { count: 10, status: 500, body: '<html>Traceback (most recent call last): File "/srv/app.py"</html>' } });
    const html = await post('/v1/chat/completions', { model: 'm', messages: [{ role: 'user', content: 'x' }] });
    expect(html.body.error.message).toBe('The model server returned an error (HTTP 500).');
    upstream.configure({ failNext: { count: 10, mode: 'reset' } });
    const reset = await post('/v1/chat/completions', { model: 'm', messages: [{ role: 'user', content: 'x' }] });
    expect(reset.status).toBe(502);
    expect(reset.body.error.message).toMatch(/^The model server is unavailable; try again later \(request id [\w-]+\)\.$/);
    for (const text of [failed.text, html.text, reset.text]) expect(text).not.toMatch(/127\.0\.0\.1|openai-compatible\(|Traceback/);
    upstream.configure({ failNext: { count: 10, mode: 'hang' } });
    const hung = await post('/v1/chat/completions', { model: 'm', messages: [{ role: 'user', content: 'x' }] });
    expect(hung.status).toBe(504);
    upstream.configure({ failNext: { count: 0 } });
  });

  it("an upstream 429 is OpenAI's 429 (rate_limit_exceeded) with the upstream's retry-after, streamed or not", async () => {
    const slowDown = { error: { message: 'slow down', type: 'rate_limit_error', param: null, code: null } };
    for (const stream of [false, true]) {
      upstream.configure({ failNext: { count: 10, status: 429, body: slowDown, headers: { 'retry-after': '7' } } });
      const limited = await post('/v1/chat/completions', { model: 'm', messages: [{ role: 'user', content: 'x' }], stream });
      expect(limited.status).toBe(429);
      expect(limited.body.error).toMatchObject({ message: 'slow down', code: 'rate_limit_exceeded' });
      expect(limited.headers.get('retry-after')).toBe('7');
    }
    // Without one from the upstream, none is made up.
    upstream.configure({ failNext: { count: 10, status: 429, body: slowDown } });
    const bare = await post('/v1/chat/completions', { model: 'm', messages: [{ role: 'user', content: 'x' }] });
    expect(bare.status).toBe(429);
    expect(bare.headers.get('retry-after')).toBeNull();
    upstream.configure({ failNext: { count: 0 } });
  });

  it('400 for free-form fields nested too deeply (a stack overflow was a 500), on every route that takes them', async () => {
    // 1000 levels (the server's BODY_LIMIT_BYTES is 4 KB here; 10 000 levels, 25 KB, overflowed the stack).
    const deep = '['.repeat(1_000) + ']'.repeat(1_000);
    const withDeep = (body: object) => JSON.stringify(body).replace('"DEEP"', deep);
    const chat = { model: 'm', messages: [{ role: 'user', content: 'x' }] };
    const cases: Array<[string, string, string]> = [
      ['/v1/completions', withDeep({ model: 'm', prompt: 'x', x: 'DEEP' }), 'x'],
      ['/v1/chat/completions', withDeep({ ...chat, response_format: { type: 'json_schema', json_schema: { name: 'n', schema: { a: 'DEEP' } } } }), 'response_format'],
      ['/v1/chat/completions', withDeep({ ...chat, tools: [{ type: 'function', function: { name: 'f', parameters: { a: 'DEEP' } } }] }), 'tools[0].function.parameters'],
      ['/v1/responses', withDeep({ model: 'm', input: 'x', text: { format: { type: 'json_schema', name: 'n', schema: { a: 'DEEP' } } } }), 'text.format'],
      ['/v1/embeddings', withDeep({ model: 'm', input: 'x', x: 'DEEP' }), 'x'],
    ];
    for (const [path, body, param] of cases) {
      const res = await call(path, { method: 'POST', headers: { 'content-type': 'application/json' }, body });
      expect(res.status, path).toBe(400);
      expect(res.body.error, path).toMatchObject({ type: 'invalid_request_error', param });
      expect(res.body.error.message, path).toMatch(/nested deeper than 64 levels/);
    }
  });

  it('OpenAI-shaped errors for what fails before any route runs: bad URLs, long parameters, huge headers, non-HTTP, other media types', async () => {
    const badUrl = await call('/v1/models/%ZZ');
    expect(badUrl.status).toBe(400);
    // Before any hook, still with the headers every response carries.
    const raw400 = await fetch(`${server.url}/v1/models/%ZZ`, { headers: { 'x-request-id': 'bad-url-1' } });
    expect([raw400.headers.get('x-request-id'), raw400.headers.get('x-served-by')]).toEqual(['bad-url-1', expect.any(String)]);
    const longParam = await call(`/v1/responses/resp_${'a'.repeat(200)}`);
    expect(longParam.status).toBe(414);
    const hugeHeaders = await call('/v1/models', { headers: { 'x-big': 'a'.repeat(20_000) } });
    expect(hugeHeaders.status).toBe(431);
    expect(hugeHeaders.body.error.code).toBe('request_headers_too_large');
    const text = await post('/v1/chat/completions', '{}', { 'content-type': 'text/plain' });
    expect(text.status).toBe(415);
    expect(text.body.error.code).toBe('unsupported_media_type');
    const emptyId = await call('/v1/responses/');
    expect(emptyId.status).toBe(400);
    expect(emptyId.body.error.message).toMatch(/^Invalid path parameter 'id'/);
    // A header value with a control character: Node's parser refuses it before Fastify.
    const raw = await rawHttp(server.port, 'GET /v1/models HTTP/1.1\r\nHost: x\r\nX-Bad: a\u0001b\r\n\r\n');
    expect(raw.split('\r\n')[0]).toBe('HTTP/1.1 400 Bad Request');
    expect(JSON.parse(raw.split('\r\n\r\n')[1]!)).toEqual({ error: { message: 'The request is not valid HTTP.', type: 'invalid_request_error', param: null, code: 'invalid_http' } });
  });

  it("echoes a client's plain x-request-id and replaces an unsafe or over-long one", async () => {
    const plain = await fetch(`${server.url}/v1/models`, { headers: { 'x-request-id': 'client-id.42' } });
    expect(plain.headers.get('x-request-id')).toBe('client-id.42');
    for (const bad of ['<script>alert(1)</script>', 'x'.repeat(500)]) {
      const res = await fetch(`${server.url}/v1/models`, { headers: { 'x-request-id': bad } });
      expect(res.headers.get('x-request-id')).toMatch(/^[0-9a-f-]{36}$/);
    }
  });

  it('keeps serving after all of that', async () => {
    const res = await fetch(`${server.url}/v1/chat/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ model: 'm', messages: [{ role: 'user', content: 'still there?' }] }),
    });
    expect(res.status).toBe(200);
    expect(server.process.exitCode).toBeNull();
    expect(res.headers.get('x-request-id')).toBeTruthy();
  });
});

/** Sends raw bytes and returns what the server wrote before closing (at most 2 s). */
function rawHttp(port: number, request: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, '127.0.0.1', () => socket.end(request));
    let data = '';
    socket.setTimeout(2_000, () => socket.destroy());
    socket.on('data', (chunk: Buffer) => (data += chunk.toString()));
    socket.on('close', () => resolve(data));
    socket.on('error', reject);
  });
}
