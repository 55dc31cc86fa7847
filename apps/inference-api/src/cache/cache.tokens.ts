/**
 * Readiness probe of the cache's Redis connection: `() => Promise<void>` that PINGs within
 * REDIS_TIMEOUT_MS and rejects while Redis is down or slow. Provided (globally) only when the
 * cache uses Redis (REDIS_URL set and CACHE_ENABLED); inject it with `@Optional()`.
 */
export const REDIS_PING = Symbol.for('inference-api:redis-ping');
export type RedisPing = () => Promise<void>;
