import { createHash } from 'node:crypto';
import type { IncomingHttpHeaders } from 'node:http';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { ApiError } from './api-error.js';
import { replyWithError } from './error-reply.js';

export type KeyCheck = 'ok' | 'missing' | 'invalid';

/**
 * The routes that need a key when API_KEYS is set: everything under /v1 and /predict, as vLLM's
 * `--api-key` guards /v1. Health and docs stay open (balancers and orchestrators probe without
 * credentials). Decided on the route Fastify matched, not on the raw URL, so an encoded or oddly
 * written path cannot reach a guarded route unguarded; a URL that matches no route gets its 404.
 */
export function routeNeedsKey(routeUrl: string | undefined): boolean {
  if (routeUrl === undefined) return false;
  return routeUrl === '/predict' || routeUrl === '/v1' || routeUrl.startsWith('/v1/');
}

/** The key a client sent: `Authorization: Bearer <key>` (OpenAI SDKs) or `x-api-key: <key>`. */
export function presentedKey(headers: IncomingHttpHeaders): string | undefined {
  const auth = headers.authorization;
  if (typeof auth === 'string' && auth.length > 7 && auth.slice(0, 7).toLowerCase() === 'bearer ') {
    const key = auth.slice(7).trim();
    if (key.length > 0) return key;
  }
  const apiKey = headers['x-api-key'];
  return typeof apiKey === 'string' && apiKey.length > 0 ? apiKey : undefined;
}

/** SHA-256 of a key, base64: what is kept and compared instead of the key. */
export const keyDigest = (key: string) => createHash('sha256').update(key).digest('base64');

/**
 * Checks presented keys against the configured ones. Only SHA-256 digests are kept and compared, so
 * how long a comparison takes says nothing about the keys themselves.
 */
export class ApiKeys {
  private readonly digests: ReadonlySet<string>;

  constructor(keys: readonly string[]) {
    if (keys.length === 0) throw new RangeError('ApiKeys needs at least one key');
    this.digests = new Set(keys.map(keyDigest));
  }

  check(headers: IncomingHttpHeaders): KeyCheck {
    const key = presentedKey(headers);
    if (key === undefined) return 'missing';
    return this.digests.has(keyDigest(key)) ? 'ok' : 'invalid';
  }
}

const MISSING_MESSAGE =
  "You didn't provide an API key. Send it in an Authorization header using Bearer auth (Authorization: Bearer YOUR_KEY), or in an x-api-key header.";
const INVALID_MESSAGE = 'Incorrect API key provided.';

/**
 * Guards the inference routes with API_KEYS: an `onRequest` hook (it runs before the body is read),
 * registered only when keys are configured, so a server without keys pays nothing. Answers 401 in
 * the OpenAI shape (`invalid_api_key` for a wrong key, as OpenAI does) with `WWW-Authenticate`.
 */
export function registerApiKeyHook(fastify: FastifyInstance, keys: readonly string[]): void {
  const apiKeys = new ApiKeys(keys);
  fastify.addHook('onRequest', (request: FastifyRequest, reply: FastifyReply, done: (error?: Error) => void) => {
    if (!routeNeedsKey(request.routeOptions.url)) return done();
    const result = apiKeys.check(request.headers);
    if (result === 'ok') return done();
    reply.header('www-authenticate', result === 'missing' ? 'Bearer' : 'Bearer error="invalid_token"');
    const error =
      result === 'missing'
        ? new ApiError(401, MISSING_MESSAGE, 'invalid_request_error', null)
        : new ApiError(401, INVALID_MESSAGE, 'invalid_request_error', 'invalid_api_key');
    replyWithError(error, request, reply);
    // The reply is sent: Fastify stops here (no body parsing, no handler).
    return undefined;
  });
}
