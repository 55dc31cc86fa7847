import { type FakeUpstream, startFakeUpstream } from '@infer/model-providers/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type ApiServer, startApiServer } from '../support/api-server.js';
import { fakeModelsYaml } from '../support/load.js';

/** CORS_ORIGINS: browser apps on the listed origins may call the API (with API_KEYS on, preflights need no key). */
describe('CORS', () => {
  let server: ApiServer;
  let upstream: FakeUpstream;
  const allowed = 'https://app.example';

  beforeAll(async () => {
    upstream = await startFakeUpstream({ tokens: 3 });
    server = await startApiServer({
      env: { CORS_ORIGINS: `${allowed}, http://localhost:5173`, API_KEYS: 'sk-cors', CACHE_ENABLED: 'false' },
      modelsYaml: fakeModelsYaml(upstream.url, 'm'),
    });
  });

  afterAll(async () => {
    await server?.stop();
    await upstream?.close();
  });

  it('answers the preflight of an allowed origin without a key', async () => {
    const res = await fetch(`${server.url}/v1/chat/completions`, {
      method: 'OPTIONS',
      headers: { origin: allowed, 'access-control-request-method': 'POST', 'access-control-request-headers': 'authorization, content-type' },
    });
    expect(res.status).toBe(204);
    expect(res.headers.get('access-control-allow-origin')).toBe(allowed);
    expect(res.headers.get('access-control-allow-methods')).toContain('POST');
    expect(res.headers.get('access-control-allow-headers')?.toLowerCase()).toContain('authorization');
    // A browser client may delete a stored response.
    const del = await fetch(`${server.url}/v1/responses/resp_x`, {
      method: 'OPTIONS',
      headers: { origin: allowed, 'access-control-request-method': 'DELETE', 'access-control-request-headers': 'authorization' },
    });
    expect(del.status).toBe(204);
    expect(del.headers.get('access-control-allow-methods')).toContain('DELETE');
  });

  it('marks responses to allowed origins, exposes the cache and request-id headers, and not others', async () => {
    const body = JSON.stringify({ model: 'm', messages: [{ role: 'user', content: 'hi' }] });
    const headers = { 'content-type': 'application/json', authorization: 'Bearer sk-cors' };
    const res = await fetch(`${server.url}/v1/chat/completions`, { method: 'POST', headers: { ...headers, origin: allowed }, body });
    expect(res.status).toBe(200);
    expect(res.headers.get('access-control-allow-origin')).toBe(allowed);
    expect(res.headers.get('access-control-expose-headers')).toContain('x-request-id');
    await res.text();
    const denied = await fetch(`${server.url}/v1/chat/completions`, { method: 'POST', headers: { ...headers, origin: 'https://evil.example' }, body });
    expect(denied.headers.get('access-control-allow-origin')).toBeNull();
    await denied.text();
    // A 401 carries the CORS headers too, so a browser app can read why.
    const unauthorized = await fetch(`${server.url}/v1/models`, { headers: { origin: allowed } });
    expect(unauthorized.status).toBe(401);
    expect(unauthorized.headers.get('access-control-allow-origin')).toBe(allowed);
  });
});
