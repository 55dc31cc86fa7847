import type { IncomingHttpHeaders } from 'node:http';
import { abortedError, type EmbeddingResult } from '@infer/model-providers';
import type { Keyv } from 'keyv';
import { abortControllers } from '../common/abort-pool.js';
import type { CacheClient } from '../common/client-link.js';
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
 * Single-flight in this process: an identical request that comes while the model computes the
 * vectors joins that call (`x-cache: HIT`, `age: 0`) instead of making its own; the call is aborted
 * only when every request waiting on it is gone. Processes do not coalesce with each other here.
 */
export class EmbeddingsCache {
  /** Counters for /metrics and tests. */
  readonly stats = { hits: 0, misses: 0, coalesced: 0, bypasses: 0, storeErrors: 0 };
  readonly description: string;
  private readonly options: EmbeddingsCacheOptions;
  /** Calls in flight by cache key, until their entry is stored. */
  private readonly flights = new Map<string, EmbeddingsFlight>();

  constructor(options: EmbeddingsCacheOptions) {
    this.options = options;
    this.description = options.description;
  }

  /** Embeddings in flight that identical requests can join (tests, shutdown logs). */
  get inFlight(): number {
    return this.flights.size;
  }

  /**
   * The vectors for `job`: from the store, from an identical call in flight, or from `upstream`
   * (given the signal to abort it with). `client` is the request's: its leaving stops its wait,
   * and the call once nobody waits for it.
   */
  async embed(
    job: EmbeddingJob,
    headers: IncomingHttpHeaders,
    upstream: (signal: AbortSignal) => Promise<EmbeddingResult>,
    client: CacheClient,
  ): Promise<ServedEmbeddings> {
    const { config, modelTtlSeconds } = this.options;
    const plan = planEmbeddings(job, headers, config, config.enabled ? modelTtlSeconds(job.model) : undefined);
    if (plan.mode === 'off') return { result: await upstream(client.signal), headers: undefined };
    if (plan.mode === 'bypass') {
      this.stats.bypasses += 1;
      return { result: await upstream(client.signal), headers: BYPASS_HEADERS };
    }
    const { key } = plan;
    if (!plan.refresh) {
      let running = this.flights.get(key);
      if (running === undefined) {
        const entry = await this.read(key, job.request.input.length);
        if (entry !== undefined && (plan.maxAgeMs === undefined || Date.now() - entry.createdAt <= plan.maxAgeMs)) {
          this.stats.hits += 1;
          return { result: { embeddings: entry.embeddings, usage: { promptTokens: entry.promptTokens } }, headers: hitHeaders(entry) };
        }
        // Another request may have started the call while the store was read.
        running = this.flights.get(key);
      }
      if (running !== undefined) {
        this.stats.coalesced += 1;
        return { result: await running.join(client), headers: hitHeaders(undefined) };
      }
    }
    this.stats.misses += 1;
    const controller = client.adopt?.() ?? abortControllers.acquire();
    const flight = new EmbeddingsFlight(controller, upstream, () => this.forget(key, flight));
    this.flights.set(key, flight);
    // The answer does not wait for the store; the call stays joinable until the entry is there.
    flight.result
      .then(
        (result) => this.write(key, { v: 1, embeddings: result.embeddings, promptTokens: result.usage.promptTokens, createdAt: Date.now() }, plan.ttlMs),
        noop,
      )
      .finally(() => {
        this.forget(key, flight);
        abortControllers.release(controller);
      });
    return { result: await flight.join(client), headers: MISS_HEADERS };
  }

  private forget(key: string, flight: EmbeddingsFlight): void {
    if (this.flights.get(key) === flight) this.flights.delete(key);
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

const noop = () => undefined;

/**
 * One embeddings call shared by the identical requests that join it. Its AbortController is its
 * own (lent by the first request's client, or from the pool): it is aborted when the last request
 * waiting on the call is gone, so one client leaving does not fail the others.
 */
class EmbeddingsFlight {
  readonly result: Promise<EmbeddingResult>;
  private consumers = 0;
  private settled = false;

  constructor(
    private readonly controller: AbortController,
    upstream: (signal: AbortSignal) => Promise<EmbeddingResult>,
    private readonly onAbandon: () => void,
  ) {
    this.result = upstream(controller.signal);
    const settle = () => {
      this.settled = true;
    };
    this.result.then(settle, settle);
  }

  /** Waits for the call on behalf of `client`; rejects as aborted if the client leaves first. */
  join(client: CacheClient): Promise<EmbeddingResult> {
    this.consumers += 1;
    return new Promise<EmbeddingResult>((resolve, reject) => {
      let waiting = true;
      const unregister = client.onGone(() => {
        if (!waiting) return;
        waiting = false;
        this.leave();
        reject(abortedError());
      });
      this.result.then(
        (result) => {
          if (!waiting) return;
          waiting = false;
          unregister();
          this.consumers -= 1;
          resolve(result);
        },
        (error: unknown) => {
          if (!waiting) return;
          waiting = false;
          unregister();
          this.consumers -= 1;
          reject(error);
        },
      );
    });
  }

  private leave(): void {
    this.consumers -= 1;
    if (this.consumers === 0 && !this.settled) {
      this.controller.abort();
      this.onAbandon();
    }
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
