import { type DynamicModule, Global, Inject, Logger, Module, type OnApplicationShutdown, type OnModuleInit } from '@nestjs/common';
import { HttpAdapterHost } from '@nestjs/core';
import type { ModelRouter } from '@infer/model-providers';
import type { FastifyInstance } from 'fastify';
import type { Registry } from 'prom-client';
import { EMBEDDINGS_CACHE, type EmbeddingsCache } from '../cache/embeddings-cache.js';
import { ResponseCacheService } from '../cache/response-cache.service.js';
import type { AppConfig } from '../config/app-config.js';
import { MODEL_ROUTER } from '../models/models.tokens.js';
import { createMetricsRegistry, createUsageRecorder, recordHttpMetrics } from './metrics.js';
import { MetricsServer } from './metrics-server.js';
import { USAGE_RECORDER } from './usage-recorder.js';

const METRICS_REGISTRY = Symbol.for('inference-api:metrics-registry');
const METRICS_SERVER = Symbol.for('inference-api:metrics-server');

/**
 * Prometheus metrics (METRICS_PORT): imported by AppModule only when the port is configured, so a
 * worker without it registers no hook and loads no prom-client. Global: CompletionResponder takes
 * USAGE_RECORDER (optional) from here.
 */
@Global()
@Module({})
export class MetricsModule implements OnModuleInit, OnApplicationShutdown {
  static forRoot(instanceId: string, { host, port }: NonNullable<AppConfig['metrics']>): DynamicModule {
    return {
      module: MetricsModule,
      providers: [
        {
          provide: METRICS_REGISTRY,
          inject: [ResponseCacheService, MODEL_ROUTER, EMBEDDINGS_CACHE],
          useFactory: (cache: ResponseCacheService, router: ModelRouter, embeddings: EmbeddingsCache | null) =>
            createMetricsRegistry(instanceId, { cache, router, embeddings }),
        },
        { provide: USAGE_RECORDER, inject: [METRICS_REGISTRY], useFactory: (registry: Registry) => createUsageRecorder(registry) },
        {
          provide: METRICS_SERVER,
          inject: [METRICS_REGISTRY],
          useFactory: (registry: Registry) => new MetricsServer(registry, host, port, new Logger('Metrics')),
        },
      ],
      exports: [USAGE_RECORDER],
    };
  }

  constructor(
    @Inject(METRICS_REGISTRY) private readonly registry: Registry,
    @Inject(METRICS_SERVER) private readonly server: MetricsServer,
    private readonly adapterHost: HttpAdapterHost,
  ) {}

  async onModuleInit(): Promise<void> {
    // Fastify computes each route's hooks when it becomes ready, so this covers every route.
    recordHttpMetrics(this.adapterHost.httpAdapter.getInstance<FastifyInstance>(), this.registry);
    await this.server.start();
  }

  async onApplicationShutdown(): Promise<void> {
    await this.server.close();
  }
}
