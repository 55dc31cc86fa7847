import Fastify from 'fastify';
import { describe, expect, it } from 'vitest';
import { ApiKeys, presentedKey, registerApiKeyHook, routeNeedsKey } from './api-keys.js';

describe('API keys', () => {
  it('guards /v1 and /predict, not health or docs', () => {
    for (const url of ['/v1/chat/completions', '/v1/completions', '/v1/models', '/v1/models/:model', '/predict']) expect(routeNeedsKey(url)).toBe(true);
    for (const url of ['/health/live', '/health/ready', '/docs', '/docs-json', '/v1x', '/predictions', undefined]) expect(routeNeedsKey(url)).toBe(false);
  });

  it('reads a bearer token or x-api-key', () => {
    expect(presentedKey({ authorization: 'Bearer sk-1' })).toBe('sk-1');
    expect(presentedKey({ authorization: 'bearer   sk-1  ' })).toBe('sk-1');
    expect(presentedKey({ 'x-api-key': 'sk-2' })).toBe('sk-2');
    expect(presentedKey({ authorization: 'Bearer ', 'x-api-key': 'sk-2' })).toBe('sk-2');
    expect(presentedKey({ authorization: 'Basic dTpw' })).toBeUndefined();
    expect(presentedKey({})).toBeUndefined();
  });

  it('accepts exactly the configured keys', () => {
    const keys = new ApiKeys(['sk-one', 'sk-two']);
    expect(keys.check({ authorization: 'Bearer sk-two' })).toBe('ok');
    expect(keys.check({ 'x-api-key': 'sk-one' })).toBe('ok');
    expect(keys.check({ authorization: 'Bearer sk-one2' })).toBe('invalid');
    expect(keys.check({ authorization: 'Bearer SK-ONE' })).toBe('invalid');
    expect(keys.check({})).toBe('missing');
    expect(() => new ApiKeys([])).toThrow(RangeError);
  });

  it('answers 401 in the OpenAI shape before the body is read, and lets the rest through', async () => {
    const app = Fastify();
    registerApiKeyHook(app, ['sk-one']);
    let parsed = 0;
    app.addHook('preValidation', async () => {
      parsed += 1;
    });
    app.post('/v1/chat/completions', async () => ({ ok: true }));
    app.get('/health/ready', async () => ({ status: 'ok' }));
    const body = { model: 'm', messages: [] };

    const missing = await app.inject({ method: 'POST', url: '/v1/chat/completions', payload: body });
    expect(missing.statusCode).toBe(401);
    expect(missing.headers['www-authenticate']).toBe('Bearer');
    expect(missing.json()).toEqual({
      error: { message: expect.stringMatching(/didn't provide an API key/), type: 'invalid_request_error', param: null, code: null },
    });

    const wrong = await app.inject({ method: 'POST', url: '/v1/chat/completions', payload: body, headers: { authorization: 'Bearer sk-nope' } });
    expect(wrong.statusCode).toBe(401);
    expect(wrong.headers['www-authenticate']).toBe('Bearer error="invalid_token"');
    expect(wrong.json().error).toMatchObject({ code: 'invalid_api_key', type: 'invalid_request_error' });
    expect(wrong.body).not.toContain('sk-nope');
    expect(parsed).toBe(0);

    const right = await app.inject({ method: 'POST', url: '/v1/chat/completions', payload: body, headers: { authorization: 'Bearer sk-one' } });
    expect(right.statusCode).toBe(200);
    expect(parsed).toBe(1);
    expect((await app.inject({ method: 'GET', url: '/health/ready' })).statusCode).toBe(200);
    // Unknown routes keep their 404 (nothing to guard), percent-encoded paths do not slip past the guard.
    expect((await app.inject({ method: 'GET', url: '/nope' })).statusCode).toBe(404);
    expect((await app.inject({ method: 'POST', url: '/%76%31/chat/completions', payload: body })).statusCode).not.toBe(200);
    await app.close();
  });
});
