import OpenAI from 'openai';
import { type FakeUpstream, startFakeUpstream } from '@infer/model-providers/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type ApiServer, startApiServer } from '../support/api-server.js';
import { fakeModelsYaml } from '../support/load.js';

/** API_KEYS: the inference routes and /health/providers need one of the keys; liveness, readiness and docs stay open. */
describe('API keys', () => {
  let server: ApiServer;
  let upstream: FakeUpstream;

  beforeAll(async () => {
    upstream = await startFakeUpstream({ tokens: 4 });
    server = await startApiServer({
      env: { API_KEYS: 'sk-e2e-one, sk-e2e-two', CACHE_ENABLED: 'false' },
      modelsYaml: fakeModelsYaml(upstream.url, 'm'),
    });
  });

  afterAll(async () => {
    await server?.stop();
    await upstream?.close();
  });

  const chat = { model: 'm', messages: [{ role: 'user', content: 'hi' }] };

  it('401 in the OpenAI shape without a key or with a wrong one, and the upstream is not called', async () => {
    const before = upstream.requestCount;
    const missing = await fetch(`${server.url}/v1/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(chat) });
    expect(missing.status).toBe(401);
    expect(missing.headers.get('www-authenticate')).toBe('Bearer');
    expect(missing.headers.get('x-request-id')).toBeTruthy();
    expect(((await missing.json()) as { error: { code: unknown } }).error).toMatchObject({ type: 'invalid_request_error', code: null, param: null });
    const wrong = await fetch(`${server.url}/predict?input_text=hi`, { headers: { authorization: 'Bearer sk-e2e-three' } });
    expect(wrong.status).toBe(401);
    expect(((await wrong.json()) as { error: { code: unknown } }).error.code).toBe('invalid_api_key');
    expect((await fetch(`${server.url}/v1/models`)).status).toBe(401);
    expect(upstream.requestCount).toBe(before);
  });

  it('the OpenAI SDK with a configured key works, and with a wrong one gets AuthenticationError', async () => {
    const client = new OpenAI({ baseURL: `${server.url}/v1`, apiKey: 'sk-e2e-two', maxRetries: 0 });
    const completion = await client.chat.completions.create({ model: 'm', messages: [{ role: 'user', content: 'hi' }] });
    expect(completion.choices[0]?.message.content?.length).toBeGreaterThan(0);
    const models = await client.models.list();
    expect(models.data.map((m) => m.id)).toEqual(['m']);
    const intruder = new OpenAI({ baseURL: `${server.url}/v1`, apiKey: 'sk-e2e-nope', maxRetries: 0 });
    await expect(intruder.chat.completions.create({ model: 'm', messages: [{ role: 'user', content: 'hi' }] })).rejects.toBeInstanceOf(OpenAI.AuthenticationError);
    const viaHeader = await fetch(`${server.url}/predict?input_text=hi`, { headers: { 'x-api-key': 'sk-e2e-one' } });
    expect(viaHeader.status).toBe(200);
  });

  it('liveness, readiness and docs need no key, /health/providers does; the document marks the guarded operations', async () => {
    expect((await fetch(`${server.url}/health/live`)).status).toBe(200);
    expect((await fetch(`${server.url}/health/ready`)).status).toBe(200);
    // Per-deployment health names the upstream addresses: it needs a key.
    const providers = await fetch(`${server.url}/health/providers`);
    expect(providers.status).toBe(401);
    expect(await providers.text()).not.toContain(upstream.url);
    const withKey = await fetch(`${server.url}/health/providers`, { headers: { authorization: 'Bearer sk-e2e-one' } });
    expect(withKey.status).toBe(200);
    expect(await withKey.text()).toContain(upstream.url);
    // Readiness stays open, so with keys it names no upstream (no label, no probe detail).
    const ready = await fetch(`${server.url}/health/ready`);
    const readyText = await ready.text();
    expect(readyText).not.toContain(upstream.url);
    expect((JSON.parse(readyText) as { details: Record<string, Record<string, unknown>> }).details['m#0']).toMatchObject({ status: 'up', model: 'm' });
    const res = await fetch(`${server.url}/docs-json`);
    expect(res.status).toBe(200);
    const document = (await res.json()) as { paths: Record<string, Record<string, { security?: unknown }>> };
    expect(document.paths['/v1/chat/completions']?.['post']?.security).toEqual([{ bearer: [] }]);
    expect(document.paths['/v1/models/{model}']?.['get']?.security).toEqual([{ bearer: [] }]);
    expect(document.paths['/predict']?.['get']?.security).toEqual([{ bearer: [] }]);
    expect(document.paths['/health/ready']?.['get']?.security).toBeUndefined();
    expect(document.paths['/health/providers']?.['get']?.security).toEqual([{ bearer: [] }]);
  });
});
