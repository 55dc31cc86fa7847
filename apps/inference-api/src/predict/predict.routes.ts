import { Inject, Injectable, type OnModuleInit } from '@nestjs/common';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { errorResponse, inferenceErrorResponses } from '../common/api-docs.js';
import { HotRoutes } from '../common/hot-routes.js';
import type { AppConfig } from '../config/app-config.js';
import { APP_CONFIG } from '../config/config.tokens.js';
import type { ModelCatalog } from '../models/model-catalog.js';
import { MODEL_CATALOG } from '../models/models.tokens.js';
import { predictQuerySchema, predictResponseSchema, ref } from '../openai/openai.schemas.js';
import { PredictService } from './predict.service.js';

/** GET /predict?input_text=, served by Fastify directly (see HotRoutes). */
@Injectable()
export class PredictRoutes implements OnModuleInit {
  private readonly model: string;

  constructor(
    private readonly routes: HotRoutes,
    private readonly predict: PredictService,
    @Inject(APP_CONFIG) config: AppConfig,
    @Inject(MODEL_CATALOG) catalog: ModelCatalog,
  ) {
    this.model = config.predictModel ?? catalog.defaultModel;
  }

  onModuleInit(): void {
    this.routes.register({
      method: 'GET',
      url: '/predict',
      schema: { querystring: predictQuerySchema, response: { 200: predictResponseSchema } },
      handler: (request: FastifyRequest, reply: FastifyReply) =>
        this.predict.predict(this.model, (request.query as { input_text: string }).input_text, reply),
      openapi: {
        tags: ['Predict'],
        operationId: 'predict',
        summary: 'Generate text for one input (simple shape)',
        description:
          'Runs a greedy (temperature 0) completion of `input_text` on the default model (PREDICT_MODEL, or the first model) ' +
          'and answers `{"result": "..."}`. Deterministic, so repeated inputs are served from the response cache.',
        parameters: [
          {
            name: 'input_text',
            in: 'query',
            required: true,
            schema: predictQuerySchema.properties.input_text,
            example: 'Once upon a time',
          },
        ],
        responses: {
          200: { description: 'The generated text.', content: { 'application/json': { schema: ref('PredictResponse') } } },
          400: errorResponse('Missing or empty input_text'),
          ...inferenceErrorResponses,
        },
      },
    });
  }
}
