import { createHash } from 'node:crypto';
import type { IncomingHttpHeaders } from 'node:http';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { ApiError } from './api-error.js';
import { replyWithError } from './error-reply.js';

export type KeyCheck = 'ok' | 'missing' | 'invalid';

/**
 * The routes that need a key when API keys are set: everything under /v1 and /predict, as vLLM's
 * `--api-key` guards /v1, and /health/providers (it names every deployment's upstream address: as
 * LiteLLM guards its /health). Liveness, readiness and the docs stay open (balancers and
 * orchestrators probe without credentials). Decided on the route Fastify matched, not on the raw
 * URL, so an encoded or oddly written path cannot reach a guarded route unguarded; a URL that
 * matches no route gets its 404.
 */
export function routeNeedsKey(routeUrl: string | undefined): boolean {
  if (routeUrl === undefined) return false;
  return routeUrl === '/predict' || routeUrl === '/v1' || routeUrl.startsWith('/v1/') || routeUrl === '/health/providers';
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
 * A key the API accepts (API_KEYS, or an entry of API_KEYS_FILE). Only its SHA-256 digest is kept.
 * Named keys (API_KEYS_FILE) can have their own rate limit and model list, and are counted by name
 * in the metrics.
 */
export interface ApiKeyRecord {
  /** From API_KEYS_FILE; undefined for the keys of API_KEYS. */
  readonly name: string | undefined;
  /** SHA-256 of the key, base64. */
  readonly digest: string;
  /** Requests per minute for this key (0: none); undefined: RATE_LIMIT_RPM. */
  readonly rpm: number | undefined;
  /** The models this key may use; undefined: all. */
  readonly models: ReadonlySet<string> | undefined;
}

/** The keys of API_KEYS: no name, the global rate limit, every model. */
export function anonymousKeys(keys: readonly string[]): ApiKeyRecord[] {
  return keys.map((key) => ({ name: undefined, digest: keyDigest(key), rpm: undefined, models: undefined }));
}

declare module 'fastify' {
  interface FastifyRequest {
    /** The API key the request presented, once the key hook has checked it (API_KEYS / API_KEYS_FILE); null otherwise. */
    apiKey: ApiKeyRecord | null;
  }
}

/**
 * Checks presented keys against the configured ones. Only SHA-256 digests are kept and compared, so
 * how long a comparison takes says nothing about the keys themselves.
 */
export class ApiKeys {
  private readonly byDigest: ReadonlyMap<string, ApiKeyRecord>;

  constructor(keys: readonly ApiKeyRecord[]) {
    if (keys.length === 0) throw new RangeError('ApiKeys needs at least one key');
    this.byDigest = new Map(keys.map((record) => [record.digest, record]));
  }

  /** The record of the key the request presented, or why there is none. */
  find(headers: IncomingHttpHeaders): ApiKeyRecord | 'missing' | 'invalid' {
    const key = presentedKey(headers);
    if (key === undefined) return 'missing';
    return this.byDigest.get(keyDigest(key)) ?? 'invalid';
  }

  check(headers: IncomingHttpHeaders): KeyCheck {
    const found = this.find(headers);
    return typeof found === 'string' ? found : 'ok';
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
export function registerApiKeyHook(fastify: FastifyInstance, keys: readonly ApiKeyRecord[]): void {
  const apiKeys = new ApiKeys(keys);
  fastify.decorateRequest('apiKey', null);
  fastify.addHook('onRequest', (request: FastifyRequest, reply: FastifyReply, done: (error?: Error) => void) => {
    if (!routeNeedsKey(request.routeOptions.url)) return done();
    const result = apiKeys.find(request.headers);
    if (typeof result !== 'string') {
      request.apiKey = result;
      if (result.name !== undefined) {
        // The request's log lines (the request log included) say which named key made it.
        const log = request.log.child({ key: result.name });
        request.log = log;
        reply.log = log;
      }
      return done();
    }
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

/**
 * The models of named keys (API_KEYS_FILE `models`): a `preHandler` hook (after the body is
 * validated) on the inference routes, registered only when a key has a model list. A model the key
 * may not use is answered like an unknown one (404 `model_not_found`, OpenAI's "does not exist or
 * you do not have access to it"), so a key learns nothing about the models it cannot use.
 */
export function registerModelAccessHook(
  fastify: FastifyInstance,
  routes: ReadonlySet<string>,
  predictModel: string,
  /** A model name or alias → the model's name (undefined: unknown, left to the route's 404). */
  resolve: (name: string) => string | undefined,
): void {
  fastify.addHook('preHandler', (request: FastifyRequest, reply: FastifyReply, done: (error?: Error) => void) => {
    const models = request.apiKey?.models;
    const route = request.routeOptions.url;
    if (models === undefined || route === undefined || !routes.has(route)) return done();
    const asked = route === '/predict' ? predictModel : (request.body as { model?: unknown } | undefined)?.model;
    if (typeof asked !== 'string') return done();
    const model = resolve(asked);
    if (model === undefined || models.has(model)) return done();
    replyWithError(ApiError.modelNotFound(asked), request, reply);
    return undefined;
  });
}

/** Whether the request's key may use `model` (GET /v1/models lists only those). */
export function keyAllowsModel(request: { readonly apiKey?: ApiKeyRecord | null }, model: string): boolean {
  const models = request.apiKey?.models;
  return models === undefined || models.has(model);
}
