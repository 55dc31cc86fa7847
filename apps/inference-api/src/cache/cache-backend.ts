import type { Keyv } from 'keyv';
import type { AppConfig } from '../config/app-config.js';
import { createMemoryStore, createRedisStore } from './cache-stores.js';
import { RedisCoalescer } from './redis-coalescer.js';
import { type CacheLogger, RedisConnection } from './redis-connection.js';

/** What the cache runs on, chosen from the config: Keyv on a memory LRU, or on Redis plus the coalescer. */
export interface CacheBackend {
  /** The Keyv store handed to @nestjs/cache-manager. */
  readonly store: Keyv;
  readonly redis: RedisConnection | undefined;
  readonly coalescer: RedisCoalescer | undefined;
  /** One line for the boot log. */
  readonly description: string;
}

export function createCacheBackend(config: Pick<AppConfig, 'cache' | 'redis'>, logger: CacheLogger): CacheBackend {
  if (!config.cache.enabled || config.redis === undefined) {
    return {
      store: createMemoryStore(config.cache.maxEntries),
      redis: undefined,
      coalescer: undefined,
      description: config.cache.enabled
        ? `response cache in memory (LRU of ${config.cache.maxEntries} entries, this process only)`
        : 'response cache disabled (CACHE_ENABLED=false)',
    };
  }
  const redis = new RedisConnection({ url: config.redis.url, timeoutMs: config.redis.timeoutMs, logger });
  const store = createRedisStore(redis, (error) => logger.debug?.(`store error: ${error instanceof Error ? error.message : String(error)}`));
  return {
    store: store.keyv,
    redis,
    coalescer: new RedisCoalescer(redis, { entryKey: store.entryKey }),
    description: `response cache on Redis (shared by every process, coalescing across them; calls bounded by ${config.redis.timeoutMs} ms)`,
  };
}
