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
      modelsYaml: fakeModelsYaml(upstream.url, 'm', { timeoutMs: 1500 }),
    });
  });

  afterAll(async () => {
    await server?.stop();
    await upstream?.close();
  });

  async function call(path: string, init?: RequestInit): Promise<{ status: number; body: ErrorBody; text: string }> {
    const res = await fetch(`${server.url}${path}`, init);
    const text = await res.text();
    expect(res.headers.get('content-type')).toMatch(/application\/json/);
    expect(text).not.toMatch(/\n\s+at /); // no stack traces
    const body = JSON.parse(text) as ErrorBody;
    expect(Object.keys(body.error).sort()).toEqual(['code', 'message', 'param', 'type']);
    return { status: res.status, body, text };
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
    const prompts = await post('/v1/completions', { model: 'm', prompt: ['a', 'b'] });
    expect(prompts.status).toBe(400);
    expect(prompts.body.error).toMatchObject({ param: 'prompt', message: "Invalid body 'prompt': must NOT have more than 1 items" });
    const image = await post('/v1/chat/completions', { model: 'm', messages: [{ role: 'user', content: [{ type: 'image_url', image_url: { url: 'x' } }] }] });
    expect(image.status).toBe(400);
    expect(image.body.error.param).toBe('messages[0].content[0].type');
    expect(image.body.error.message).toMatch(/allowed values \(text\)/);
  });

  it('400 for tools or functions (answers carry no tool calls), without calling the upstream', async () => {
    const before = upstream.requestCount;
    const messages = [{ role: 'user', content: 'x' }];
    const tools = await post('/v1/chat/completions', { model: 'm', messages, tools: [{ type: 'function', function: { name: 'f' } }], stream: true });
    expect(tools.status).toBe(400);
    expect(tools.body.error).toMatchObject({ type: 'invalid_request_error', param: 'tools', code: 'unsupported_parameter' });
    expect(tools.body.error.message).toMatch(/^'tools' is not supported/);
    const functions = await post('/v1/chat/completions', { model: 'm', messages, functions: [{ name: 'f', parameters: {} }] });
    expect(functions.status).toBe(400);
    expect(functions.body.error.param).toBe('functions');
    const typed = await post('/v1/chat/completions', { model: 'm', messages, tools: 'f' });
    expect(typed.status).toBe(400);
    expect(typed.body.error.param).toBe('tools');
    expect(upstream.requestCount).toBe(before);
    // An empty list asks for nothing.
    const empty = await fetch(`${server.url}/v1/chat/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ model: 'm', messages, tools: [] }),
    });
    expect(empty.status).toBe(200);
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
    expect(failed.body.error.message).toContain('GPU on fire');
    upstream.configure({ failNext: { count: 10, mode: 'hang' } });
    const hung = await post('/v1/chat/completions', { model: 'm', messages: [{ role: 'user', content: 'x' }] });
    expect(hung.status).toBe(504);
    upstream.configure({ failNext: { count: 0 } });
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
