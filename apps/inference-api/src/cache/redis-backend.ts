import type { AppConfig } from '../config/app-config.js';
import type { CacheBackend } from './cache-backend.js';
import { RedisCoalescer } from './redis-coalescer.js';
import { type CacheLogger, RedisConnection } from './redis-connection.js';
import { createRedisStore } from './redis-store.js';

/** The shared backend: Keyv on @keyv/redis, the app's Redis connection and the cross-process coalescer. */
export function createRedisBackend(redisConfig: NonNullable<AppConfig['redis']>, logger: CacheLogger): CacheBackend {
  const redis = new RedisConnection({ url: redisConfig.url, timeoutMs: redisConfig.timeoutMs, logger });
  const store = createRedisStore(redis, (error) => logger.debug?.(`store error: ${error instanceof Error ? error.message : String(error)}`));
  return {
    store: store.keyv,
    redis,
    coalescer: new RedisCoalescer(redis, { entryKey: store.entryKey }),
    description: `response cache on Redis (shared by every process, coalescing across them; calls bounded by ${redisConfig.timeoutMs} ms)`,
  };
}
