import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { RedisConnection } from '../cache/redis-connection.js';
import { ApiError } from './api-error.js';
import './api-keys.js';
import { replyWithError } from './error-reply.js';

/** The routes RATE_LIMIT_RPM counts: the ones that run a model (not /v1/models, health or docs). */
export const RATE_LIMITED_ROUTES: ReadonlySet<string> = new Set(['/v1/chat/completions', '/v1/completions', '/v1/responses', '/v1/embeddings', '/predict']);

const WINDOW_MS = 60_000;

/** INCR the window's counter, giving it a TTL when it is new; returns the count. */
const INCREMENT = `local n = redis.call('INCR', KEYS[1])
if n == 1 then redis.call('PEXPIRE', KEYS[1], ARGV[1]) end
return n`;

export interface RateLimitDecision {
  /** Requests counted in this window, this one included. */
  readonly count: number;
  /** When the window ends (ms since the epoch). */
  readonly resetAt: number;
}

/**
 * Requests per minute per client, in fixed one-minute windows aligned on the clock (what most API
 * rate limits do; a client can burst twice the limit across a window boundary). With Redis the
 * counters are shared by every process and host (one INCR script per request); without it, or
 * while Redis is unavailable, each process counts alone (fail open: Redis trouble never refuses or
 * delays a request beyond REDIS_TIMEOUT_MS).
 *
 * @fastify/rate-limit does the same job but its Redis store is written for ioredis, and this app's
 * client is node-redis (through @keyv/redis): it would need a custom store, its own header names
 * and an error builder, for a counter this small.
 */
export class RateLimiter {
  private window = 0;
  private readonly local = new Map<string, number>();

  constructor(
    readonly limit: number,
    private readonly redis: RedisConnection | undefined,
    private readonly now: () => number = Date.now,
  ) {}

  async hit(client: string): Promise<RateLimitDecision> {
    const now = this.now();
    const window = Math.floor(now / WINDOW_MS);
    const resetAt = (window + 1) * WINDOW_MS;
    if (this.redis?.available) {
      try {
        const count = await this.redis.call((c) => c.eval(INCREMENT, { keys: [`infer:rl:${window}:${client}`], arguments: [String(WINDOW_MS + 1_000)] }));
        if (typeof count === 'number') return { count, resetAt };
      } catch {
        // Counted locally below.
      }
    }
    if (window !== this.window) {
      // Windows are aligned for every client: the previous one's counters can all go.
      this.window = window;
      this.local.clear();
    }
    const count = (this.local.get(client) ?? 0) + 1;
    this.local.set(client, count);
    return { count, resetAt };
  }
}

/**
 * Who a request counts for: with API keys, its key (checked by the key hook by then; its digest,
 * never the key itself); otherwise its address (TRUST_PROXY decides which): an unchecked key would
 * let a client make up a new one for every request.
 */
export function rateLimitClient(request: FastifyRequest): string {
  const key = request.apiKey;
  return key ? `key:${key.digest}` : `ip:${request.ip}`;
}

/**
 * RATE_LIMIT_RPM, and the `rpm` of named keys (API_KEYS_FILE): an `onRequest` hook (after the
 * API-key check, before the body is read) on the inference routes, registered only when a limit is
 * set somewhere. A request's limit is its key's `rpm` if it has one, else RATE_LIMIT_RPM (0: none).
 * Every limited answer carries OpenAI's headers (`x-ratelimit-limit-requests`,
 * `x-ratelimit-remaining-requests`, `x-ratelimit-reset-requests`); over the limit the answer is
 * OpenAI's 429 (`type: "requests"`, `code: "rate_limit_exceeded"`) with `retry-after`.
 */
export function registerRateLimitHook(fastify: FastifyInstance, limiter: RateLimiter): void {
  const defaultLimit = String(limiter.limit);
  fastify.addHook('onRequest', async (request: FastifyRequest, reply: FastifyReply) => {
    const route = request.routeOptions.url;
    if (route === undefined || !RATE_LIMITED_ROUTES.has(route)) return;
    const rpm = request.apiKey?.rpm;
    const limit = rpm ?? limiter.limit;
    if (limit === 0) return;
    const { count, resetAt } = await limiter.hit(rateLimitClient(request));
    const resetSeconds = Math.max(1, Math.ceil((resetAt - Date.now()) / 1000));
    reply.header('x-ratelimit-limit-requests', rpm === undefined ? defaultLimit : String(rpm));
    reply.header('x-ratelimit-remaining-requests', String(Math.max(0, limit - count)));
    reply.header('x-ratelimit-reset-requests', `${resetSeconds}s`);
    if (count <= limit) return;
    reply.header('retry-after', String(resetSeconds));
    replyWithError(
      new ApiError(
        429,
        `Rate limit reached for requests per minute (RPM): limit ${limit}, used ${count - 1}. Try again in ${resetSeconds}s.`,
        'requests',
        'rate_limit_exceeded',
      ),
      request,
      reply,
    );
    return reply;
  });
}
