import { Module } from '@nestjs/common';
import { CompletionResponder } from './completion-responder.js';
import { InferenceService } from './inference.service.js';
import { ModelsController } from './models.controller.js';
import { OpenAIRoutes } from './openai.routes.js';

/** The OpenAI-compatible API: /v1/models (a controller) and the two completion routes (hot routes, see HotRoutes). */
@Module({
  controllers: [ModelsController],
  providers: [InferenceService, CompletionResponder, OpenAIRoutes],
  exports: [InferenceService, CompletionResponder],
})
export class OpenAIModule {}
