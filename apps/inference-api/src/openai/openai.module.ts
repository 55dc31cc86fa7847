import { Module } from '@nestjs/common';
import { CompletionResponder } from './completion-responder.js';
import { EmbeddingsRoutes } from './embeddings.routes.js';
import { InferenceService } from './inference.service.js';
import { ModelsController } from './models.controller.js';
import { OpenAIRoutes } from './openai.routes.js';
import { ResponsesRoutes } from './responses.routes.js';

/** The OpenAI-compatible API: /v1/models (a controller), the two completion routes, /v1/responses and /v1/embeddings (hot routes, see HotRoutes). */
@Module({
  controllers: [ModelsController],
  providers: [InferenceService, CompletionResponder, OpenAIRoutes, ResponsesRoutes, EmbeddingsRoutes],
  exports: [InferenceService, CompletionResponder],
})
export class OpenAIModule {}
