/**
 * REDIS_PING is bound by the owner of the app's Redis client (the response cache, see
 * cache/cache.tokens.ts) when the cache uses Redis; the Redis readiness check injects it with
 * `@Optional()` and reports clearly when REDIS_URL is set but nothing provides it.
 */
export { REDIS_PING, type RedisPing } from '../cache/cache.tokens.js';
