import { Logger, Module } from '@nestjs/common';
import { REDIS_CONNECTION } from '../cache/response-cache.module.js';
import type { RedisConnection } from '../cache/redis-connection.js';
import type { AppConfig } from '../config/app-config.js';
import { APP_CONFIG } from '../config/config.tokens.js';
import { BACKGROUND_WORK } from '../health/graceful-shutdown.js';
import { BackgroundResponses } from './background-responses.js';
import { CompletionResponder } from './completion-responder.js';
import { ConversationsRoutes } from './conversations.routes.js';
import { EmbeddingsRoutes } from './embeddings.routes.js';
import { InferenceService } from './inference.service.js';
import { ModelsController } from './models.controller.js';
import { OpenAIRoutes } from './openai.routes.js';
import { createResponseStore, RESPONSE_STORE } from './response-store.js';
import { ResponsesRoutes } from './responses.routes.js';

/** The OpenAI-compatible API: /v1/models (a controller), the two completion routes, /v1/responses and /v1/embeddings (hot routes, see HotRoutes). */
@Module({
  controllers: [ModelsController],
  providers: [
    InferenceService,
    CompletionResponder,
    OpenAIRoutes,
    ResponsesRoutes,
    ConversationsRoutes,
    EmbeddingsRoutes,
    // One per app (a factory: a value would be shared by every app the process creates, tests included).
    { provide: BackgroundResponses, useFactory: () => new BackgroundResponses() },
    // The graceful shutdown gives them the drain to finish.
    { provide: BACKGROUND_WORK, useExisting: BackgroundResponses },
    {
      provide: RESPONSE_STORE,
      inject: [APP_CONFIG, REDIS_CONNECTION],
      useFactory: (config: AppConfig, redis: RedisConnection | null) => createResponseStore(config, redis, new Logger('ResponseStore')),
    },
  ],
  exports: [InferenceService, CompletionResponder],
})
export class OpenAIModule {}
