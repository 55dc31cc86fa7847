import { randomUUID } from 'node:crypto';
import { NestFactory } from '@nestjs/core';
import { FastifyAdapter, type NestFastifyApplication } from '@nestjs/platform-fastify';
import { Logger } from 'nestjs-pino';
import { LogController } from 'fastify';
import { pino, type Logger as PinoLogger } from 'pino';
import { AppModule } from './app.module.js';
import { REDIS_CONNECTION } from './cache/response-cache.module.js';
import type { RedisConnection } from './cache/redis-connection.js';
import { registerApiKeyHook, registerModelAccessHook } from './common/api-keys.js';
import { RATE_LIMITED_ROUTES, RateLimiter, registerRateLimitHook } from './common/rate-limit.js';
import { LazyRequestLogger } from './common/lazy-request-logger.js';
import { type AppConfig, ConfigValidationError } from './config/app-config.js';
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
    requestIdHeader: 'x-request-id',
    genReqId: () => randomUUID(),
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
  if (config.apiKeys.length > 0) registerApiKeyHook(fastify, config.apiKeys);
  if (config.rateLimitRpm > 0 || config.apiKeys.some((key) => (key.rpm ?? 0) > 0)) {
    // After the API-key hook: a request without a valid key is refused before it is counted.
    const redis = app.get<symbol, RedisConnection | null>(REDIS_CONNECTION, { strict: false });
    registerRateLimitHook(fastify, new RateLimiter(config.rateLimitRpm, redis ?? undefined));
  }
  if (config.apiKeys.some((key) => key.models !== undefined)) {
    const catalog = app.get<symbol, ModelCatalog>(MODEL_CATALOG);
    for (const key of config.apiKeys) {
      for (const model of key.models ?? []) {
        if (!catalog.get(model)) {
          throw new ConfigValidationError(
            `Invalid configuration: API_KEYS_FILE: key "${key.name ?? '?'}" lists the model "${model}", which the models file does not serve (${catalog.list.data.map((m) => m.id).join(', ')})`,
          );
        }
      }
    }
    registerModelAccessHook(fastify, RATE_LIMITED_ROUTES, config.predictModel ?? catalog.defaultModel);
  }
  registerOpenApiRoutes(app, { apiKeys: config.apiKeys.length > 0 });
  await app.init();
  return app;
}
