import { Inject, Injectable } from '@nestjs/common';
import type { AppConfig } from '../config/app-config.js';
import { APP_CONFIG } from '../config/config.tokens.js';
import { InferenceService } from '../openai/inference.service.js';

@Injectable()
export class PredictService {
  constructor(
    private readonly inference: InferenceService,
    @Inject(APP_CONFIG) private readonly config: AppConfig,
  ) {}

  async predict(model: string, inputText: string, signal: AbortSignal): Promise<{ result: string }> {
    const job = this.inference.completionJob({ model, prompt: inputText, max_tokens: this.config.predictMaxTokens, temperature: 0 });
    const result = await this.inference.generate(job, signal);
    return { result: result.text };
  }
}
