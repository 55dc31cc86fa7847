import { createHash } from 'node:crypto';
import Fastify from 'fastify';
import { describe, expect, it } from 'vitest';
import { parseApiKeys } from './api-keys-file.js';
import { anonymousKeys, ApiKeys, keyDigest, presentedKey, registerApiKeyHook, registerModelAccessHook, routeNeedsKey } from './api-keys.js';
import { RATE_LIMITED_ROUTES, RateLimiter, registerRateLimitHook } from './rate-limit.js';

describe('API keys', () => {
  it('guards /v1, /predict and /health/providers, not liveness, readiness or docs', () => {
    for (const url of ['/v1/chat/completions', '/v1/completions', '/v1/models', '/v1/models/:model', '/predict', '/health/providers']) expect(routeNeedsKey(url)).toBe(true);
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
    const keys = new ApiKeys(anonymousKeys(['sk-one', 'sk-two']));
    expect(keys.check({ authorization: 'Bearer sk-two' })).toBe('ok');
    expect(keys.check({ 'x-api-key': 'sk-one' })).toBe('ok');
    expect(keys.check({ authorization: 'Bearer sk-one2' })).toBe('invalid');
    expect(keys.check({ authorization: 'Bearer SK-ONE' })).toBe('invalid');
    expect(keys.check({})).toBe('missing');
    expect(() => new ApiKeys([])).toThrow(RangeError);
  });

  it('answers 401 in the OpenAI shape before the body is read, and lets the rest through', async () => {
    const app = Fastify();
    registerApiKeyHook(app, anonymousKeys(['sk-one']));
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

  it('finds the record of the presented key (its name, rpm and models), by digest', () => {
    const named = parseApiKeys('keys:\n  - name: team-a\n    key: sk-team-a-1\n    rpm: 5\n    models: [m1]\n');
    const keys = new ApiKeys([...anonymousKeys(['sk-anon-1']), ...named]);
    expect(keys.find({ authorization: 'Bearer sk-team-a-1' })).toMatchObject({ name: 'team-a', rpm: 5, digest: keyDigest('sk-team-a-1') });
    expect(keys.find({ authorization: 'Bearer sk-anon-1' })).toMatchObject({ name: undefined, rpm: undefined, models: undefined });
    expect(keys.find({ authorization: 'Bearer sk-other' })).toBe('invalid');
  });
});

describe('API_KEYS_FILE', () => {
  const hex = createHash('sha256').update('sk-hashed-key').digest('hex');

  it('reads named keys given as the key or as its SHA-256 (hex or base64)', () => {
    const keys = parseApiKeys(
      ['keys:', '  - name: a', '    key: sk-plain-key', '  - name: b.team@x', `    sha256: ${hex}`, '    rpm: 0', '  - name: c', `    sha256: ${keyDigest('sk-third-key')}`, '    models: [m1, m2]'].join('\n'),
    );
    expect(keys.map((k) => k.name)).toEqual(['a', 'b.team@x', 'c']);
    expect(keys[0]).toEqual({ name: 'a', digest: keyDigest('sk-plain-key'), rpm: undefined, models: undefined });
    expect(keys[1]!.digest).toBe(keyDigest('sk-hashed-key'));
    expect(keys[1]!.rpm).toBe(0);
    expect(keys[2]!.digest).toBe(keyDigest('sk-third-key'));
    expect([...keys[2]!.models!]).toEqual(['m1', 'm2']);
  });

  it('refuses a bad file naming the entry, never showing a key', () => {
    const bad: Array<[string, RegExp]> = [
      ['keys: []', /keys must NOT have fewer than 1 items/],
      ['keys:\n  - name: a\n', /keys\[0\] \("a"\) must have exactly one of `key` and `sha256`/],
      ['keys:\n  - name: a\n    key: sk-secret-1\n    sha256: ' + hex + '\n', /keys\[0\] \("a"\) must have exactly one of/],
      ['keys:\n  - name: a\n    key: sk-secret-1\n    rmp: 5\n', /keys\[0\] \("a"\) must NOT have additional properties \(rmp\)/],
      ['keys:\n  - name: a\n    key: sk-secret-1\n    rpm: -1\n', /keys\[0\] \("a"\)\.rpm must be >= 0/],
      ['keys:\n  - name: a\n    key: short\n', /keys\[0\] \("a"\)\.key must match pattern/],
      ['keys:\n  - name: "has space"\n    key: sk-secret-1\n', /keys\[0\]\.name must match pattern/],
      ['keys:\n  - name: a\n    key: sk-secret-1\n  - name: a\n    key: sk-secret-2\n', /keys\[1\] repeats the name "a"/],
      ['keys:\n  - name: a\n    key: sk-secret-1\n  - name: b\n    key: sk-secret-1\n', /keys\[1\] \("b"\) is the same key as an earlier entry/],
      ['keys:\n  - name: a\n    key: sk-secret-1\n    models: []\n', /models must NOT have fewer than 1 items/],
      ['keys:\n  - name: a\n    key: "sk-secret-1\n', /not valid YAML \(line \d+, column \d+\)/],
    ];
    for (const [text, message] of bad) {
      let thrown: unknown;
      try {
        parseApiKeys(text);
      } catch (error) {
        thrown = error;
      }
      expect(thrown, text).toBeInstanceOf(Error);
      expect((thrown as Error).message, text).toMatch(message);
      expect((thrown as Error).message, text).not.toMatch(/sk-secret/);
    }
  });
});

describe('named keys: rate limits and models', () => {
  async function appWith(yaml: string, defaultRpm: number) {
    const keys = [...anonymousKeys(['sk-anon-key']), ...parseApiKeys(yaml)];
    const app = Fastify();
    registerApiKeyHook(app, keys);
    registerRateLimitHook(app, new RateLimiter(defaultRpm, undefined));
    registerModelAccessHook(app, RATE_LIMITED_ROUTES, 'm1', (name) => (name === 'alias-of-m2' ? 'm2' : ['m1', 'm2'].includes(name) ? name : undefined));
    app.post('/v1/chat/completions', async (request) => ({ ok: true, model: (request.body as { model: string }).model, key: request.apiKey?.name ?? null }));
    app.get('/predict', async () => ({ result: 'x' }));
    return app;
  }
  const chat = (app: Awaited<ReturnType<typeof appWith>>, key: string, model = 'm1') =>
    app.inject({ method: 'POST', url: '/v1/chat/completions', payload: { model, messages: [] }, headers: { authorization: `Bearer ${key}` } });

  it("a key's rpm replaces RATE_LIMIT_RPM for that key; rpm 0 means no limit", async () => {
    const app = await appWith('keys:\n  - name: slow\n    key: sk-slow-key\n    rpm: 1\n  - name: free\n    key: sk-free-key\n    rpm: 0\n  - name: usual\n    key: sk-usual-key\n', 2);
    const slow = [await chat(app, 'sk-slow-key'), await chat(app, 'sk-slow-key')];
    expect(slow.map((r) => r.statusCode)).toEqual([200, 429]);
    expect(slow[0]!.headers['x-ratelimit-limit-requests']).toBe('1');
    expect(slow[1]!.json().error).toMatchObject({ code: 'rate_limit_exceeded', type: 'requests' });
    const free = await Promise.all([1, 2, 3, 4].map(() => chat(app, 'sk-free-key')));
    expect(free.map((r) => r.statusCode)).toEqual([200, 200, 200, 200]);
    expect(free[0]!.headers['x-ratelimit-limit-requests']).toBeUndefined();
    const usual = [await chat(app, 'sk-usual-key'), await chat(app, 'sk-usual-key'), await chat(app, 'sk-usual-key')];
    expect(usual.map((r) => r.statusCode)).toEqual([200, 200, 429]);
    expect(usual[0]!.headers['x-ratelimit-limit-requests']).toBe('2');
    // The anonymous key has the global limit, counted on its own.
    expect((await chat(app, 'sk-anon-key')).statusCode).toBe(200);
    expect((await chat(app, 'sk-usual-key')).json().error.code).toBe('rate_limit_exceeded');
    await app.close();
  });

  it('a key with a model list gets 404 model_not_found for the others (/predict: its model), as for an unknown model', async () => {
    const app = await appWith('keys:\n  - name: narrow\n    key: sk-narrow-key\n    models: [m2]\n  - name: wide\n    key: sk-wide-key\n', 0);
    const ok = await chat(app, 'sk-narrow-key', 'm2');
    expect(ok.json()).toEqual({ ok: true, model: 'm2', key: 'narrow' });
    // An alias of an allowed model is allowed; an unknown name is left to the route (its own 404).
    expect((await chat(app, 'sk-narrow-key', 'alias-of-m2')).statusCode).toBe(200);
    expect((await chat(app, 'sk-narrow-key', 'nope')).statusCode).toBe(200);
    const denied = await chat(app, 'sk-narrow-key', 'm1');
    expect(denied.statusCode).toBe(404);
    expect(denied.json()).toEqual({
      error: { message: "The model 'm1' does not exist or you do not have access to it.", type: 'invalid_request_error', param: 'model', code: 'model_not_found' },
    });
    expect((await app.inject({ method: 'GET', url: '/predict?input_text=x', headers: { authorization: 'Bearer sk-narrow-key' } })).statusCode).toBe(404);
    expect((await chat(app, 'sk-wide-key', 'm1')).json()).toEqual({ ok: true, model: 'm1', key: 'wide' });
    expect((await app.inject({ method: 'GET', url: '/predict?input_text=x', headers: { authorization: 'Bearer sk-anon-key' } })).statusCode).toBe(200);
    await app.close();
  });
});
