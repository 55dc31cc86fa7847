import type { ModelRouter } from '@infer/model-providers';
import { describe, expect, it } from 'vitest';
import { ApiError } from '../common/api-error.js';
import { loadAppConfig } from '../config/app-config.js';
import type { ModelCatalog } from '../models/model-catalog.js';
import { InferenceService } from '../openai/inference.service.js';
import type { ChatCompletionBody } from '../openai/openai.schemas.js';
import { cacheKey } from './cache-key.js';
import { keyDigest } from '../common/api-keys.js';
import { namespaceOf, planRequest, type CachePolicyConfig } from './cache-policy.js';

const inference = new InferenceService(
  { capabilitiesOf: () => undefined } as unknown as ModelRouter,
  { get: (id: string) => ({ id }), resolve: (id: string) => id } as unknown as ModelCatalog,
);
const job = (body: Partial<ChatCompletionBody> = {}) =>
  inference.chatJob({ model: 'm', messages: [{ role: 'user', content: 'hi' }], ...body } as ChatCompletionBody);
const config = (env: Record<string, string> = {}): CachePolicyConfig => loadAppConfig(env).cache;

describe('cache policy', () => {
  it('is off when the cache is disabled', () => {
    expect(planRequest(job({ temperature: 0 }), {}, config({ CACHE_ENABLED: 'false' }), undefined)).toEqual({ mode: 'off' });
  });

  it('caches reproducible requests only: temperature 0 or a seed', () => {
    expect(planRequest(job({ temperature: 0 }), {}, config(), undefined)).toMatchObject({ mode: 'use', ttlMs: 60_000, refresh: false });
    expect(planRequest(job({ temperature: 0.7, seed: 42 }), {}, config(), undefined)).toMatchObject({ mode: 'use' });
    expect(planRequest(job({ temperature: 0.7 }), {}, config(), undefined)).toEqual({ mode: 'bypass' });
    expect(planRequest(job({}), {}, config(), undefined)).toEqual({ mode: 'bypass' });
  });

  it('caches requests for logprobs under keys of their own (per number of alternatives); other keys are unchanged', () => {
    const greedy = job({ temperature: 0 });
    const withLogprobs = (n: number) => ({ ...greedy, request: { ...greedy.request, logprobs: n } }) as typeof greedy;
    const keyOf = (j: typeof greedy) => (planRequest(j, {}, config(), undefined) as { key: string }).key;
    expect(planRequest(withLogprobs(0), {}, config(), undefined)).toMatchObject({ mode: 'use' });
    expect(new Set([keyOf(greedy), keyOf(withLogprobs(0)), keyOf(withLogprobs(2))]).size).toBe(3);
    expect(keyOf(greedy)).toBe(cacheKey(greedy, null));
  });

  it('caches non-reproducible requests on opt-in by config or header', () => {
    expect(planRequest(job({ temperature: 0.7 }), {}, config({ CACHE_NONDETERMINISTIC: 'true' }), undefined)).toMatchObject({ mode: 'use' });
    expect(planRequest(job({ temperature: 0.7 }), { 'x-cache-allow-nondeterministic': '1' }, config(), undefined)).toMatchObject({ mode: 'use' });
    expect(planRequest(job({ temperature: 0.7 }), { 'x-cache-allow-nondeterministic': 'true' }, config(), undefined)).toMatchObject({ mode: 'use' });
    expect(planRequest(job({ temperature: 0.7 }), { 'x-cache-allow-nondeterministic': '0' }, config(), undefined)).toEqual({ mode: 'bypass' });
  });

  it('honours Cache-Control', () => {
    expect(planRequest(job({ temperature: 0 }), { 'cache-control': 'no-store' }, config(), undefined)).toEqual({ mode: 'bypass' });
    expect(planRequest(job({ temperature: 0 }), { 'cache-control': 'No-Cache' }, config(), undefined)).toMatchObject({ mode: 'use', refresh: true });
    expect(planRequest(job({ temperature: 0 }), { 'cache-control': 'max-age=5, no-transform' }, config(), undefined)).toMatchObject({ mode: 'use', maxAgeMs: 5000 });
    expect(planRequest(job({ temperature: 0 }), { 'cache-control': 'no-cache, no-store' }, config(), undefined)).toEqual({ mode: 'bypass' });
  });

  it('takes the TTL from the request, else the model, else the config', () => {
    expect(planRequest(job({ temperature: 0 }), {}, config({ CACHE_TTL_SECONDS: '30' }), undefined)).toMatchObject({ ttlMs: 30_000 });
    expect(planRequest(job({ temperature: 0 }), {}, config({ CACHE_TTL_SECONDS: '30' }), 300)).toMatchObject({ ttlMs: 300_000 });
    expect(planRequest(job({ temperature: 0 }), { 'x-cache-ttl': '5' }, config(), 300)).toMatchObject({ ttlMs: 5_000 });
    expect(planRequest(job({ temperature: 0 }), { 'x-cache-ttl': '999999' }, config({ CACHE_MAX_TTL_SECONDS: '3600' }), undefined)).toMatchObject({ ttlMs: 3_600_000 });
    // TTL 0 anywhere: not cached.
    expect(planRequest(job({ temperature: 0 }), { 'x-cache-ttl': '0' }, config(), undefined)).toEqual({ mode: 'bypass' });
    expect(planRequest(job({ temperature: 0 }), {}, config(), 0)).toEqual({ mode: 'bypass' });
    expect(planRequest(job({ temperature: 0 }), {}, config({ CACHE_TTL_SECONDS: '0' }), undefined)).toEqual({ mode: 'bypass' });
  });

  it('rejects a malformed x-cache-ttl with a 400 (cacheable request or not)', () => {
    for (const [value, temperature] of [['soon', 0], ['-1', 0], ['1.5', 0], ['', 0], ['soon', 1]] as const) {
      let error: unknown;
      try {
        planRequest(job({ temperature }), { 'x-cache-ttl': value }, config(), undefined);
      } catch (e) {
        error = e;
      }
      expect(error, value).toBeInstanceOf(ApiError);
      expect((error as ApiError).status).toBe(400);
      expect((error as ApiError).param).toBe('x-cache-ttl');
    }
  });

  it('keys by namespace: global, API key, or tenant header', () => {
    const global = config();
    const byKey = config({ CACHE_NAMESPACE: 'api-key' });
    const byHeader = config({ CACHE_NAMESPACE: 'header', CACHE_NAMESPACE_HEADER: 'X-Tenant' });
    expect(namespaceOf({ authorization: 'Bearer a' }, global)).toBeNull();
    expect(namespaceOf({ authorization: 'Bearer a' }, byKey)).toBe(`key:${keyDigest('a')}`);
    expect(namespaceOf({ 'x-api-key': 'a' }, byKey)).toBe(`key:${keyDigest('a')}`);
    // A named key (API_KEYS_FILE) by its name: its old and new values share entries.
    const named = { ...byKey, keyNames: new Map([[keyDigest('old-secret'), 'batch'], [keyDigest('new-secret'), 'batch']]) };
    expect(namespaceOf({ authorization: 'Bearer old-secret' }, named)).toBe('name:batch');
    expect(namespaceOf({ authorization: 'Bearer new-secret' }, named)).toBe('name:batch');
    expect(namespaceOf({ authorization: 'Bearer a' }, named)).toBe(`key:${keyDigest('a')}`);
    expect(namespaceOf({}, byKey)).toBe('anonymous');
    expect(namespaceOf({ 'x-tenant': 't1' }, byHeader)).toBe('tenant:t1');
    expect(namespaceOf({}, byHeader)).toBe('none');
    const plan = (headers: Record<string, string>, c: CachePolicyConfig) => planRequest(job({ temperature: 0 }), headers, c, undefined) as { key: string };
    expect(plan({ authorization: 'Bearer a' }, byKey).key).not.toBe(plan({ authorization: 'Bearer b' }, byKey).key);
    expect(plan({ authorization: 'Bearer a' }, global).key).toBe(plan({ authorization: 'Bearer b' }, global).key);
    expect(plan({}, global).key).toBe(cacheKey(job({ temperature: 0 }), null));
  });
});
