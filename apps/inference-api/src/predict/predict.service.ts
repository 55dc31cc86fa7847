import { Inject, Injectable } from '@nestjs/common';
import type { FastifyReply } from 'fastify';
import type { AppConfig } from '../config/app-config.js';
import { APP_CONFIG } from '../config/config.tokens.js';
import { CompletionResponder } from '../openai/completion-responder.js';
import { InferenceService } from '../openai/inference.service.js';

@Injectable()
export class PredictService {
  constructor(
    private readonly inference: InferenceService,
    private readonly responder: CompletionResponder,
    @Inject(APP_CONFIG) private readonly config: AppConfig,
  ) {}

  /**
   * A greedy completion of `inputText`, through the response cache when it is enabled (same
   * entries as the identical POST /v1/completions; `x-cache`/`age` are set on `reply`).
   */
  async predict(model: string, inputText: string, reply: FastifyReply): Promise<{ result: string }> {
    const job = this.inference.completionJob({ model, prompt: inputText, max_tokens: this.config.predictMaxTokens, temperature: 0 });
    const result = await this.responder.generate(job, reply);
    return { result: result.text };
  }
}
