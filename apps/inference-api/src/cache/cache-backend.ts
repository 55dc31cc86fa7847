import type { Keyv } from 'keyv';
import type { AppConfig } from '../config/app-config.js';
import { createMemoryStore } from './cache-stores.js';
import type { RedisCoalescer } from './redis-coalescer.js';
import type { CacheLogger, RedisConnection } from './redis-connection.js';

/** What the cache runs on, chosen from the config: Keyv on a memory LRU, or on Redis plus the coalescer. */
export interface CacheBackend {
  /** The Keyv store handed to @nestjs/cache-manager. */
  readonly store: Keyv;
  readonly redis: RedisConnection | undefined;
  readonly coalescer: RedisCoalescer | undefined;
  /** One line for the boot log. */
  readonly description: string;
}

/**
 * The Redis side (@keyv/redis and node-redis, ~3.5 MB of heap once loaded) is imported only when
 * REDIS_URL is set: a worker on the embedded memory cache does not carry it. With REDIS_URL the
 * connection exists even when the cache is off: the rate limiter and the stored responses of
 * /v1/responses share it, and readiness checks it.
 */
export async function createCacheBackend(config: Pick<AppConfig, 'cache' | 'redis'>, logger: CacheLogger): Promise<CacheBackend> {
  if (config.redis === undefined) {
    return {
      store: createMemoryStore(config.cache.maxEntries, config.cache.maxBytes),
      redis: undefined,
      coalescer: undefined,
      description: config.cache.enabled
        ? `response cache in memory (LRU of ${config.cache.maxEntries} entries and about ${config.cache.maxBytes} bytes, this process only)`
        : 'response cache disabled (CACHE_ENABLED=false)',
    };
  }
  const { createRedisBackend } = await import('./redis-backend.js');
  const backend = createRedisBackend(config.redis, logger);
  if (config.cache.enabled) return backend;
  return {
    ...backend,
    coalescer: undefined,
    description: 'response cache disabled (CACHE_ENABLED=false); Redis (REDIS_URL) still shared by the rate limiter and stored responses',
  };
}
