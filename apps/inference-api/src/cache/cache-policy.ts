import type { IncomingHttpHeaders } from 'node:http';
import { ApiError } from '../common/api-error.js';
import { keyDigest, presentedKey } from '../common/api-keys.js';
import type { AppConfig } from '../config/app-config.js';
import type { EmbeddingJob, InferenceJob } from '../openai/inference.service.js';
import { cacheKey, embeddingsCacheKey } from './cache-key.js';

/** Request headers the cache understands (lower case, as Node gives them). */
export const CACHE_HEADERS = {
  /** `no-cache`: skip the lookup, call upstream, store the fresh result. `no-store`: no read, no write. `max-age=N`: accept entries at most N s old. */
  cacheControl: 'cache-control',
  /** Per-request TTL in whole seconds (0: do not cache this request), capped by CACHE_MAX_TTL_SECONDS. */
  ttl: 'x-cache-ttl',
  /** `1`/`true`: cache this request although it is not reproducible (temperature > 0 and no seed). */
  allowNondeterministic: 'x-cache-allow-nondeterministic',
} as const;

/** Response headers. */
export const X_CACHE = 'x-cache';
export const AGE = 'age';

export type CacheStatus = 'HIT' | 'MISS' | 'BYPASS';

export type CachePlan =
  /** The cache is disabled (CACHE_ENABLED=false): no lookup, no header. */
  | { readonly mode: 'off' }
  /** Not cacheable (not reproducible, no-store, TTL 0): straight upstream, `X-Cache: BYPASS`. */
  | { readonly mode: 'bypass' }
  | UsePlan;

export interface UsePlan {
  readonly mode: 'use';
  readonly key: string;
  readonly ttlMs: number;
  /** `Cache-Control: no-cache`: skip the lookup and do not join other requests; the result replaces the entry. */
  readonly refresh: boolean;
  /** `Cache-Control: max-age=N`: only entries at most this old are served. */
  readonly maxAgeMs: number | undefined;
}

export const OFF_PLAN: CachePlan = Object.freeze({ mode: 'off' });
export const BYPASS_PLAN: CachePlan = Object.freeze({ mode: 'bypass' });

export type CachePolicyConfig = AppConfig['cache'];

/** What the request's cache headers ask for (`Cache-Control`, `X-Cache-TTL`); null: `no-store`. */
interface Directives {
  readonly refresh: boolean;
  readonly maxAgeMs: number | undefined;
  /** `X-Cache-TTL`, capped by CACHE_MAX_TTL_SECONDS. */
  readonly ttlSeconds: number | undefined;
}

const NO_DIRECTIVES: Directives = Object.freeze({ refresh: false, maxAgeMs: undefined, ttlSeconds: undefined });

function directivesOf(headers: IncomingHttpHeaders, config: CachePolicyConfig): Directives | null {
  const cacheControl = headers[CACHE_HEADERS.cacheControl];
  const ttlHeader = headers[CACHE_HEADERS.ttl];
  if (cacheControl === undefined && ttlHeader === undefined) return NO_DIRECTIVES;
  let refresh = false;
  let maxAgeMs: number | undefined;
  if (cacheControl !== undefined) {
    for (const raw of String(cacheControl).split(',')) {
      const directive = raw.trim().toLowerCase();
      if (directive === 'no-store') return null;
      if (directive === 'no-cache') refresh = true;
      else if (directive.startsWith('max-age=')) {
        const seconds = Number(directive.slice(8));
        if (Number.isInteger(seconds) && seconds >= 0) maxAgeMs = seconds * 1000;
      }
    }
  }
  // A malformed TTL header is a 400 whether or not this request turns out cacheable.
  const ttlSeconds = ttlHeader === undefined ? undefined : Math.min(parseTtl(ttlHeader), config.maxTtlSeconds);
  return { refresh, maxAgeMs, ttlSeconds };
}

/** The TTL of a cacheable request in ms (header, model, default, first found); 0: do not cache it. */
function ttlMsOf(directives: Directives, modelTtlSeconds: number | undefined, config: CachePolicyConfig): number {
  const ttlSeconds = directives.ttlSeconds ?? modelTtlSeconds ?? config.ttlSeconds;
  return ttlSeconds > 0 ? Math.round(ttlSeconds * 1000) : 0;
}

function usePlan(key: string, ttlMs: number, directives: Directives): UsePlan {
  return { mode: 'use', key, ttlMs, refresh: directives.refresh, maxAgeMs: directives.maxAgeMs };
}

/**
 * Decides what the cache does with one request, cheapest checks first: a request that is not
 * cacheable never pays for the hash.
 *
 * @param modelTtlSeconds the models file's `cacheTtlSeconds` for the job's model, if any
 */
export function planRequest(
  job: InferenceJob,
  headers: IncomingHttpHeaders,
  config: CachePolicyConfig,
  modelTtlSeconds: number | undefined,
): CachePlan {
  if (!config.enabled) return OFF_PLAN;
  const directives = directivesOf(headers, config);
  if (directives === null) return BYPASS_PLAN;
  const r = job.request;
  if (r.temperature !== 0 && r.seed === undefined && !config.cacheNondeterministic && !isTrue(headers[CACHE_HEADERS.allowNondeterministic])) {
    return BYPASS_PLAN;
  }
  const ttlMs = ttlMsOf(directives, modelTtlSeconds, config);
  return ttlMs === 0 ? BYPASS_PLAN : usePlan(cacheKey(job, namespaceOf(headers, config)), ttlMs, directives);
}

/**
 * The same decision for an embeddings request (CACHE_EMBEDDINGS): embeddings are deterministic, so
 * only the headers, the TTL and the switch decide.
 */
export function planEmbeddings(
  job: EmbeddingJob,
  headers: IncomingHttpHeaders,
  config: CachePolicyConfig,
  modelTtlSeconds: number | undefined,
): CachePlan {
  if (!config.enabled || !config.embeddings) return OFF_PLAN;
  const directives = directivesOf(headers, config);
  if (directives === null) return BYPASS_PLAN;
  const ttlMs = ttlMsOf(directives, modelTtlSeconds, config);
  return ttlMs === 0 ? BYPASS_PLAN : usePlan(embeddingsCacheKey(job, namespaceOf(headers, config)), ttlMs, directives);
}

/**
 * The cache namespace of a request: null (global), the API key (a named key by its name, another by
 * its SHA-256 digest), or the tenant header's value.
 */
export function namespaceOf(headers: IncomingHttpHeaders, config: Pick<CachePolicyConfig, 'namespace' | 'namespaceHeader' | 'keyNames'>): string | null {
  switch (config.namespace) {
    case 'global':
      return null;
    case 'api-key': {
      const key = presentedKey(headers);
      if (key === undefined) return 'anonymous';
      const digest = keyDigest(key);
      const name = config.keyNames.get(digest);
      return name === undefined ? `key:${digest}` : `name:${name}`;
    }
    case 'header': {
      const value = headers[config.namespaceHeader];
      const tenant = Array.isArray(value) ? value[0] : value;
      return tenant === undefined || tenant === '' ? 'none' : `tenant:${tenant}`;
    }
    default: {
      const unreachable: never = config.namespace;
      return unreachable;
    }
  }
}

function parseTtl(value: string | string[]): number {
  const text = Array.isArray(value) ? value[0] : value;
  if (text === undefined || !/^\s*\d+\s*$/.test(text)) {
    throw ApiError.invalidRequest(`Invalid header '${CACHE_HEADERS.ttl}': expected a whole number of seconds (got ${JSON.stringify(text ?? '')}).`, CACHE_HEADERS.ttl, 'invalid_header');
  }
  return Number(text);
}

function isTrue(value: string | string[] | undefined): boolean {
  if (value === undefined) return false;
  const text = (Array.isArray(value) ? value[0] : value)?.trim().toLowerCase();
  return text === '1' || text === 'true' || text === 'yes';
}
