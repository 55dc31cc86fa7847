/**
 * Readiness probe of the app's Redis connection: `() => Promise<void>` that PINGs within
 * REDIS_TIMEOUT_MS and rejects while Redis is down or slow. Provided (globally) only when
 * REDIS_URL is set; inject it with `@Optional()`.
 */
export const REDIS_PING = Symbol.for('inference-api:redis-ping');
export type RedisPing = () => Promise<void>;
