import {
  type DynamicModule,
  Global,
  Inject,
  Logger,
  Module,
  type OnApplicationShutdown,
  type OnModuleInit,
  type Provider,
} from '@nestjs/common';
import { CACHE_MANAGER, CacheModule as NestCacheModule } from '@nestjs/cache-manager';
import type { Cache } from 'cache-manager';
import type { AppConfig } from '../config/app-config.js';
import type { ModelCatalog } from '../models/model-catalog.js';
import { MODEL_CATALOG } from '../models/models.tokens.js';
import { REDIS_PING, type RedisPing } from './cache.tokens.js';
import { createCacheBackend } from './cache-backend.js';
import { createEmbeddingsCache, EMBEDDINGS_CACHE } from './embeddings-cache.js';
import type { RedisConnection } from './redis-connection.js';
import { ResponseCacheService } from './response-cache.service.js';

/** The app's Redis connection (RedisConnection; REDIS_URL, cache on or off), or null: the cache, the rate limiter and the response store use it. */
export const REDIS_CONNECTION = Symbol.for('inference-api:cache-redis-connection');
const CACHE_DESCRIPTION = Symbol.for('inference-api:cache-description');

/**
 * The response cache: @nestjs/cache-manager on a Keyv store (a bounded in-memory LRU, or Redis via
 * @keyv/redis when REDIS_URL is set), the single-flight coalescer, and REDIS_PING for readiness;
 * also the embeddings cache (EMBEDDINGS_CACHE). Global: CompletionResponder and PredictService inject
 * ResponseCacheService, the embeddings route and the metrics EMBEDDINGS_CACHE.
 */
@Global()
@Module({})
export class ResponseCacheModule implements OnModuleInit, OnApplicationShutdown {
  /** Async: the Redis backend is imported only when configured (Nest accepts a promised module in `imports`). */
  static async forRoot(config: AppConfig): Promise<DynamicModule> {
    const logger = new Logger('ResponseCache');
    const { store, redis, coalescer, description } = await createCacheBackend(config, logger);
    const providers: Provider[] = [
      { provide: REDIS_CONNECTION, useValue: redis ?? null },
      {
        provide: ResponseCacheService,
        inject: [CACHE_MANAGER, MODEL_CATALOG],
        useFactory: (cache: Cache, catalog: ModelCatalog) =>
          new ResponseCacheService({
            config: config.cache,
            cache,
            modelTtlSeconds: (model) => catalog.cacheTtlSeconds(model),
            logger,
            ...(redis ? { redis } : {}),
            ...(coalescer ? { coalescer } : {}),
          }),
      },
    ];
    if (redis) {
      const ping: RedisPing = () => redis.ping();
      providers.push({ provide: REDIS_PING, useValue: ping });
    }
    providers.push({ provide: CACHE_DESCRIPTION, useValue: description });
    providers.push({
      provide: EMBEDDINGS_CACHE,
      inject: [MODEL_CATALOG],
      useFactory: (catalog: ModelCatalog) =>
        createEmbeddingsCache(config, redis ?? null, (model) => catalog.cacheTtlSeconds(model), new Logger('EmbeddingsCache')),
    });
    return {
      module: ResponseCacheModule,
      imports: [NestCacheModule.register({ stores: [store] })],
      providers,
      exports: redis ? [ResponseCacheService, REDIS_CONNECTION, EMBEDDINGS_CACHE, REDIS_PING] : [ResponseCacheService, REDIS_CONNECTION, EMBEDDINGS_CACHE],
    };
  }

  private readonly logger = new Logger('ResponseCache');

  constructor(
    @Inject(REDIS_CONNECTION) private readonly redis: RedisConnection | null,
    @Inject(CACHE_DESCRIPTION) private readonly description: string,
  ) {}

  /** Connects to Redis, waiting at most REDIS_TIMEOUT_MS: the app starts without cache when Redis is down. */
  async onModuleInit(): Promise<void> {
    this.logger.log(this.description);
    await this.redis?.start();
  }

  async onApplicationShutdown(): Promise<void> {
    await this.redis?.close();
  }
}
