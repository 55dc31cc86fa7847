import { Inject, Injectable, Optional } from '@nestjs/common';
import { type HealthIndicatorResult, HealthIndicatorService } from '@nestjs/terminus';
import type { AppConfig } from '../config/app-config.js';
import { APP_CONFIG } from '../config/config.tokens.js';
import { REDIS_PING, type RedisPing } from './health.tokens.js';
import { errorMessage, withTimeout } from './timeout.js';

/**
 * Readiness of Redis, for readiness only (terminus has no Redis indicator): a PING on the app's
 * own client (provided under REDIS_PING by the cache), bounded by REDIS_TIMEOUT_MS.
 *
 * Down while Redis does not answer when REDIS_REQUIRED (the default); `degraded` (still 200) when
 * it is optional, since the API then serves without the shared cache. Never part of liveness.
 */
@Injectable()
export class RedisHealthIndicator {
  constructor(
    @Inject(APP_CONFIG) private readonly config: AppConfig,
    private readonly indicators: HealthIndicatorService,
    @Optional() @Inject(REDIS_PING) private readonly ping: RedisPing | null = null,
  ) {}

  /** True when readiness includes this check: REDIS_URL is set (the app then connects, cache on or off). */
  get configured(): boolean {
    return this.config.redis !== undefined;
  }

  async check(key = 'redis'): Promise<HealthIndicatorResult> {
    const session = this.indicators.check(key);
    const redis = this.config.redis;
    if (!redis) return session.up({ configured: false });
    const base = { target: redisTarget(redis.url), required: redis.required };
    const failed = (data: Record<string, unknown>) =>
      redis.required ? session.down({ ...base, ...data }) : session.degraded({ ...base, ...data });
    const ping = this.ping;
    if (!ping) {
      return failed({
        message: 'REDIS_URL is set, but no Redis client is registered (nothing provides REDIS_PING)',
      });
    }
    const started = performance.now();
    try {
      // The client bounds its PING by REDIS_TIMEOUT_MS itself; this is the backstop.
      await withTimeout(() => ping(), redis.timeoutMs + 100, 'Redis PING');
      return session.up({ ...base, responseTime: Math.round(performance.now() - started) });
    } catch (error) {
      return failed({ message: `PING failed: ${errorMessage(error)}`, responseTime: Math.round(performance.now() - started) });
    }
  }
}

/** host:port of a Redis URL, without credentials (health output is public). */
export function redisTarget(url: string): string {
  try {
    const parsed = new URL(url);
    return `${parsed.protocol}//${parsed.hostname}:${parsed.port || '6379'}`;
  } catch {
    return 'redis';
  }
}
