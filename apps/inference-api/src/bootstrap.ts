import { randomUUID } from 'node:crypto';
import { type IncomingMessage, STATUS_CODES } from 'node:http';
import type { Duplex } from 'node:stream';
import { NestFactory } from '@nestjs/core';
import { FastifyAdapter, type NestFastifyApplication } from '@nestjs/platform-fastify';
import { Logger } from 'nestjs-pino';
import { type FastifyReply, type FastifyRequest, LogController } from 'fastify';
import { pino, type Logger as PinoLogger } from 'pino';
import { AppModule } from './app.module.js';
import { REDIS_CONNECTION } from './cache/response-cache.module.js';
import type { RedisConnection } from './cache/redis-connection.js';
import { errorBody } from './common/api-error.js';
import { registerApiKeyHook, registerModelAccessHook } from './common/api-keys.js';
import { replyWithError } from './common/error-reply.js';
import { RATE_LIMITED_ROUTES, RateLimiter, registerRateLimitHook } from './common/rate-limit.js';
import { LazyRequestLogger } from './common/lazy-request-logger.js';
import type { AppConfig } from './config/app-config.js';
import { withModelNames } from './config/preflight.js';
import type { ModelCatalog } from './models/model-catalog.js';
import { MODEL_CATALOG } from './models/models.tokens.js';
import { registerOpenApiRoutes } from './openapi.js';

/** Paths never written to logs: credentials and prompt/completion bodies. */
export const REDACTED_LOG_PATHS = [
  'req.headers.authorization',
  'req.headers["x-api-key"]',
  'req.headers.cookie',
  'req.body',
  'res.body',
  'body',
  'messages',
  'prompt',
  'input_text',
  'input',
  'instructions',
  '*.messages',
  '*.prompt',
  '*.input',
  '*.instructions',
  '*.content',
  '*.text',
];

export function createRootLogger(config: AppConfig): PinoLogger {
  return pino({
    level: config.logLevel,
    base: { pid: process.pid, instance: config.instanceId },
    redact: { paths: REDACTED_LOG_PATHS, censor: '[redacted]' },
  });
}

/** How long a client has to send a whole request (headers and body). */
export const REQUEST_TIMEOUT_MS = 60_000;

const REQUEST_ID = /^[A-Za-z0-9._:@+=/-]{1,128}$/;

/** The request id: the client's `x-request-id` if it is 1-128 plain characters, else a new UUID. */
export function requestIdOf(request: IncomingMessage): string {
  const given = request.headers['x-request-id'];
  return typeof given === 'string' && REQUEST_ID.test(given) ? given : randomUUID();
}

/**
 * What Node's HTTP parser refuses before Fastify sees a request, answered in the OpenAI error shape
 * (Fastify's default writes its own): 408 when the request did not arrive in time, 431 for headers
 * over 16 KB, 400 for anything else that is not HTTP. The connection is closed after it.
 */
export function writeClientError(error: Error & { code?: string }, socket: Duplex): void {
  if (error.code === 'ECONNRESET' || socket.destroyed) return;
  const [status, message, code] =
    error.code === 'ERR_HTTP_REQUEST_TIMEOUT'
      ? [408, 'The request did not arrive in time.', 'request_timeout']
      : error.code === 'HPE_HEADER_OVERFLOW'
        ? [431, 'The request headers (URL included) are larger than 16 KB.', 'request_headers_too_large']
        : [400, 'The request is not valid HTTP.', 'invalid_http'];
  const body = JSON.stringify(errorBody(status, message, undefined, code));
  if (socket.writable) {
    socket.write(
      `HTTP/1.1 ${status} ${STATUS_CODES[status] ?? ''}\r\nContent-Type: application/json; charset=utf-8\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`,
    );
  }
  socket.destroy(error);
}


/** Creates the Nest application on Fastify, ready to `listen`. Used by main.ts and by tests. */
export async function createApp(config: AppConfig, logger: PinoLogger = createRootLogger(config)): Promise<NestFastifyApplication> {
  const adapter = new FastifyAdapter({
    loggerInstance: logger,
    logController: new LogController({
      requestIdLogLabel: 'reqId',
      // Balancer probes would drown the request log.
      disableRequestLogging: config.logRequests ? (request) => request.url.startsWith('/health') : true,
    }),
    // request.log is created on first use (most requests log nothing): see LazyRequestLogger.
    childLoggerFactory: LazyRequestLogger.factory,
    // The client's x-request-id when it is a sane id (echoed in headers, logs and error messages), else a new one.
    requestIdHeader: false,
    genReqId: requestIdOf,
    // A request must arrive whole within this (not the response: streams are unaffected); without it a
    // client that announces a body and never sends it holds the connection forever.
    requestTimeout: REQUEST_TIMEOUT_MS,
    // Errors before any route runs, in the OpenAI shape too: a malformed URL or an over-long path
    // parameter (the router), and what Node's HTTP parser refuses (bad request line or headers,
    // headers over 16 KB, the request timeout).
    frameworkErrors: (error: Error, request: FastifyRequest, reply: FastifyReply) => {
      // Answered before any onRequest hook: the headers every response carries are set here.
      reply.header('x-request-id', request.id);
      reply.header('x-served-by', config.instanceId);
      replyWithError(error, request, reply);
    },
    clientErrorHandler: writeClientError,
    bodyLimit: config.bodyLimitBytes,
    // Fastify accepts a hop count too; the adapter's option type omits it.
    trustProxy: config.trustProxy as boolean | string,
    return503OnClosing: true,
    ajv: {
      customOptions: {
        // No type coercion: `oneOf: [string, array]` must not match a string twice, and OpenAI
        // rejects `"max_tokens": "5"` too.
        coerceTypes: false,
        removeAdditional: false,
        useDefaults: true,
        allErrors: false,
        keywords: ['example'],
      },
    },
  });
  const app = await NestFactory.create<NestFastifyApplication>(AppModule.forRoot(config, logger), adapter, {
    bufferLogs: true,
    abortOnError: false,
    // Fastify's own JSON parser (string + secure-json-parse, bodyLimit) instead of Nest's wrapper
    // around it (buffer, then a second parser call per request). No route needs the raw body.
    bodyParser: false,
  });
  app.useLogger(app.get(Logger));
  // No app.enableShutdownHooks(): main.ts installs GracefulShutdown (health/graceful-shutdown.ts), which
  // drains requests and streams first and then calls app.close(), which runs the shutdown hooks.
  const fastify = app.getHttpAdapter().getInstance();
  // Fastify reads text/plain bodies as strings by default; no route takes one: 415 like other types.
  fastify.removeContentTypeParser('text/plain');
  fastify.addHook('onRequest', (request, reply, done) => {
    reply.header('x-request-id', request.id);
    reply.header('x-served-by', config.instanceId);
    done();
  });
  if (config.corsOrigins !== undefined) {
    // @fastify/cors through Nest; preflights are answered before the API-key check (they carry no key).
    app.enableCors({
      origin: config.corsOrigins === '*' ? '*' : [...config.corsOrigins],
      // DELETE: a browser client removing a stored response (DELETE /v1/responses/{id}).
      methods: ['GET', 'POST', 'DELETE', 'OPTIONS'],
      exposedHeaders: [
        'x-request-id',
        'x-served-by',
        'x-cache',
        'age',
        'retry-after',
        'x-ratelimit-limit-requests',
        'x-ratelimit-remaining-requests',
        'x-ratelimit-reset-requests',
      ],
      maxAge: 600,
    });
  }
  const catalog = app.get<symbol, ModelCatalog>(MODEL_CATALOG);
  const apiKeys = withModelNames(config.apiKeys, catalog);
  if (apiKeys.length > 0) registerApiKeyHook(fastify, apiKeys);
  if (config.rateLimitRpm > 0 || config.apiKeys.some((key) => (key.rpm ?? 0) > 0)) {
    // After the API-key hook: a request without a valid key is refused before it is counted.
    const redis = app.get<symbol, RedisConnection | null>(REDIS_CONNECTION, { strict: false });
    registerRateLimitHook(fastify, new RateLimiter(config.rateLimitRpm, redis ?? undefined));
  }
  if (apiKeys.some((key) => key.models !== undefined)) {
    registerModelAccessHook(fastify, RATE_LIMITED_ROUTES, config.predictModel ?? catalog.defaultModel, (name) => catalog.resolve(name));
  }
  registerOpenApiRoutes(app, { apiKeys: config.apiKeys.length > 0 });
  await app.init();
  return app;
}
