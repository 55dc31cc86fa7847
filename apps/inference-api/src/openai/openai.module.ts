import { Module } from '@nestjs/common';
import { ChatCompletionsController } from './chat-completions.controller.js';
import { CompletionResponder } from './completion-responder.js';
import { CompletionsController } from './completions.controller.js';
import { InferenceService } from './inference.service.js';
import { ModelsController } from './models.controller.js';

@Module({
  controllers: [ChatCompletionsController, CompletionsController, ModelsController],
  providers: [InferenceService, CompletionResponder],
  exports: [InferenceService, CompletionResponder],
})
export class OpenAIModule {}
