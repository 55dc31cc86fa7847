import { Inject, Injectable } from '@nestjs/common';
import type { FastifyReply } from 'fastify';
import { SignalClient } from '../cache/client-link.js';
import { ResponseCacheService } from '../cache/response-cache.service.js';
import type { AppConfig } from '../config/app-config.js';
import { APP_CONFIG } from '../config/config.tokens.js';
import { InferenceService } from '../openai/inference.service.js';

@Injectable()
export class PredictService {
  constructor(
    private readonly inference: InferenceService,
    private readonly cache: ResponseCacheService,
    @Inject(APP_CONFIG) private readonly config: AppConfig,
  ) {}

  /**
   * A greedy completion of `inputText`. With `reply`, it goes through the response cache (same
   * entries as the identical POST /v1/completions) and sets `x-cache`/`age` on the reply.
   */
  async predict(model: string, inputText: string, signal: AbortSignal, reply?: FastifyReply): Promise<{ result: string }> {
    const job = this.inference.completionJob({ model, prompt: inputText, max_tokens: this.config.predictMaxTokens, temperature: 0 });
    if (!reply || !this.cache.enabled) {
      const result = await this.inference.generate(job, signal);
      return { result: result.text };
    }
    const served = await this.cache.generate(
      job,
      reply.request.headers,
      { generate: (s) => this.inference.generate(job, s), stream: (s) => this.inference.stream(job, s) },
      new SignalClient(signal),
    );
    if (served.headers) reply.headers(served.headers);
    return { result: served.result.text };
  }
}
