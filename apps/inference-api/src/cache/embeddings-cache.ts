import type { IncomingHttpHeaders } from 'node:http';
import type { EmbeddingResult } from '@infer/model-providers';
import type { Keyv } from 'keyv';
import type { AppConfig } from '../config/app-config.js';
import type { EmbeddingJob } from '../openai/inference.service.js';
import { boundedMemoryKeyv } from './bounded-memory-store.js';
import { planEmbeddings } from './cache-policy.js';
import type { CacheLogger, RedisConnection } from './redis-connection.js';
import { BYPASS_HEADERS, type CacheHeaders, hitHeaders, MISS_HEADERS } from './response-cache.service.js';

/** What the embeddings cache keeps: the vectors as the provider gave them, and the usage. */
export interface EmbeddingsEntry {
  readonly v: 1;
  readonly embeddings: readonly (readonly number[])[];
  readonly promptTokens: number;
  /** ms since the epoch: the `Age` header. */
  readonly createdAt: number;
}

export interface ServedEmbeddings {
  readonly result: EmbeddingResult;
  /** `x-cache` (and `age` on hits); undefined when the cache is off. */
  readonly headers: CacheHeaders | undefined;
}

export interface EmbeddingsCacheOptions {
  readonly config: AppConfig['cache'];
  readonly keyv: Keyv;
  /** Per-model TTL from the models file. */
  readonly modelTtlSeconds: (model: string) => number | undefined;
  /** Set on Redis: calls are bounded, and skipped while Redis is down. */
  readonly redis: RedisConnection | undefined;
  readonly logger: CacheLogger;
  readonly description: string;
}

/**
 * The cache of POST /v1/embeddings: a whole request's vectors under a key of its model, inputs,
 * `dimensions` and output-changing extra fields (the encoding is applied per answer). Same rules as
 * the response cache (CACHE_ENABLED, TTLs, `Cache-Control`, `X-Cache-TTL`, namespaces, `x-cache` and
 * `age`), every request cacheable since embeddings are deterministic. Its own store, so large
 * vectors never evict generations: Keyv on an LRU bounded by bytes (CACHE_EMBEDDINGS_MAX_BYTES) in
 * this process, or on Redis (`infer:embeddings::<key>`). Any store failure is a miss, never an error.
 * No single-flight: identical concurrent requests each call the model.
 */
export class EmbeddingsCache {
  /** Counters for /metrics and tests. */
  readonly stats = { hits: 0, misses: 0, bypasses: 0, storeErrors: 0 };
  readonly description: string;
  private readonly options: EmbeddingsCacheOptions;

  constructor(options: EmbeddingsCacheOptions) {
    this.options = options;
    this.description = options.description;
  }

  async embed(job: EmbeddingJob, headers: IncomingHttpHeaders, upstream: () => Promise<EmbeddingResult>): Promise<ServedEmbeddings> {
    const { config, modelTtlSeconds } = this.options;
    const plan = planEmbeddings(job, headers, config, config.enabled ? modelTtlSeconds(job.model) : undefined);
    if (plan.mode === 'off') return { result: await upstream(), headers: undefined };
    if (plan.mode === 'bypass') {
      this.stats.bypasses += 1;
      return { result: await upstream(), headers: BYPASS_HEADERS };
    }
    if (!plan.refresh) {
      const entry = await this.read(plan.key, job.request.input.length);
      if (entry !== undefined && (plan.maxAgeMs === undefined || Date.now() - entry.createdAt <= plan.maxAgeMs)) {
        this.stats.hits += 1;
        return { result: { embeddings: entry.embeddings, usage: { promptTokens: entry.promptTokens } }, headers: hitHeaders(entry) };
      }
    }
    this.stats.misses += 1;
    const result = await upstream();
    const entry: EmbeddingsEntry = { v: 1, embeddings: result.embeddings, promptTokens: result.usage.promptTokens, createdAt: Date.now() };
    // Not awaited: the answer does not wait for the store.
    void this.write(plan.key, entry, plan.ttlMs);
    return { result, headers: MISS_HEADERS };
  }

  private async read(key: string, inputs: number): Promise<EmbeddingsEntry | undefined> {
    let raw: unknown;
    try {
      raw = await this.call(() => this.options.keyv.get<unknown>(key));
    } catch {
      return undefined;
    }
    if (raw === undefined || raw === null) return undefined;
    const entry = parseEmbeddingsEntry(raw, inputs);
    if (entry === undefined) this.options.logger.warn(`ignored an unreadable embeddings cache entry (${key})`);
    return entry;
  }

  private async write(key: string, entry: EmbeddingsEntry, ttlMs: number): Promise<void> {
    try {
      // false: the in-process store would not keep it (larger than CACHE_EMBEDDINGS_MAX_BYTES); not an error.
      await this.call(() => this.options.keyv.set(key, entry, ttlMs));
    } catch {
      // A cache that cannot store is a cache that misses.
      this.stats.storeErrors += 1;
    }
  }

  private call<T>(operation: () => Promise<T>): Promise<T> {
    const redis = this.options.redis;
    return redis === undefined ? operation() : redis.call(operation);
  }
}

/** The approximate memory of an entry: 8 bytes per number, plus a little per vector. */
export function embeddingsEntrySize(entry: EmbeddingsEntry): number {
  let size = 64;
  for (const vector of entry.embeddings) size += 8 * vector.length + 32;
  return size;
}

/** A stored entry, checked (one vector per input, all of one length, numbers); undefined when malformed. */
export function parseEmbeddingsEntry(raw: unknown, inputs: number): EmbeddingsEntry | undefined {
  if (raw === null || typeof raw !== 'object') return undefined;
  const e = raw as Record<string, unknown>;
  if (e['v'] !== 1 || typeof e['promptTokens'] !== 'number' || typeof e['createdAt'] !== 'number') return undefined;
  const embeddings = e['embeddings'];
  if (!Array.isArray(embeddings) || embeddings.length !== inputs) return undefined;
  const width = Array.isArray(embeddings[0]) ? (embeddings[0] as unknown[]).length : -1;
  for (const vector of embeddings) {
    if (!Array.isArray(vector) || vector.length !== width) return undefined;
    for (const x of vector) if (typeof x !== 'number') return undefined;
  }
  return raw as EmbeddingsEntry;
}

/** DI token of the EmbeddingsCache; null when the cache or CACHE_EMBEDDINGS is off. */
export const EMBEDDINGS_CACHE = Symbol.for('inference-api:embeddings-cache');

/** Redis keys of the embeddings cache: `infer:embeddings::<key>`. */
export const EMBEDDINGS_CACHE_NAMESPACE = 'infer:embeddings';

/**
 * The embeddings cache the config asks for: on Redis when the app has a connection (REDIS_URL),
 * else in this process; null when the cache or CACHE_EMBEDDINGS is off.
 */
export async function createEmbeddingsCache(
  config: Pick<AppConfig, 'cache'>,
  redis: RedisConnection | null,
  modelTtlSeconds: (model: string) => number | undefined,
  logger: CacheLogger,
): Promise<EmbeddingsCache | null> {
  const cache = config.cache;
  if (!cache.enabled || !cache.embeddings) return null;
  if (redis !== null) {
    const { createRedisStore } = await import('./redis-store.js');
    const { keyv } = createRedisStore(
      redis,
      (error) => logger.debug?.(`embeddings cache store error: ${error instanceof Error ? error.message : String(error)}`),
      EMBEDDINGS_CACHE_NAMESPACE,
    );
    return new EmbeddingsCache({ config: cache, keyv, modelTtlSeconds, redis, logger, description: 'embeddings cache on Redis (shared by every process)' });
  }
  return new EmbeddingsCache({
    config: cache,
    keyv: boundedMemoryKeyv<EmbeddingsEntry>({ maxEntries: cache.maxEntries, maxBytes: cache.embeddingsMaxBytes, sizeOf: embeddingsEntrySize }),
    modelTtlSeconds,
    redis: undefined,
    logger,
    description: `embeddings cache in memory (about ${cache.embeddingsMaxBytes} bytes of vectors at most, this process only)`,
  });
}
