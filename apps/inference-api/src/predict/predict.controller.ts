import { Controller, Get, Inject, Query, Res } from '@nestjs/common';
import { RouteSchema } from '@nestjs/platform-fastify';
import { ApiBadRequestResponse, ApiOkResponse, ApiOperation, ApiQuery, ApiTags } from '@nestjs/swagger';
import type { FastifyReply } from 'fastify';
import { ApiErrorResponses } from '../common/api-docs.js';
import type { AppConfig } from '../config/app-config.js';
import { APP_CONFIG } from '../config/config.tokens.js';
import type { ModelCatalog } from '../models/model-catalog.js';
import { MODEL_CATALOG } from '../models/models.tokens.js';
import { predictQuerySchema, predictResponseSchema, ref } from '../openai/openai.schemas.js';
import { PredictService } from './predict.service.js';

@ApiTags('Predict')
@Controller('predict')
export class PredictController {
  private readonly model: string;

  constructor(
    private readonly predict: PredictService,
    @Inject(APP_CONFIG) config: AppConfig,
    @Inject(MODEL_CATALOG) catalog: ModelCatalog,
  ) {
    this.model = config.predictModel ?? catalog.defaultModel;
  }

  @Get()
  @RouteSchema({ querystring: predictQuerySchema, response: { 200: predictResponseSchema } })
  @ApiOperation({
    summary: 'Generate text for one input (simple shape)',
    description:
      'Runs a greedy (temperature 0) completion of `input_text` on the default model (PREDICT_MODEL, or the first model) ' +
      'and answers `{"result": "..."}`. Deterministic, so repeated inputs are served from the response cache.',
  })
  @ApiQuery({ name: 'input_text', required: true, example: 'Once upon a time' })
  @ApiOkResponse({ schema: ref('PredictResponse') })
  @ApiBadRequestResponse({ description: 'Missing or empty input_text', schema: ref('ErrorResponse') })
  @ApiErrorResponses()
  run(@Query('input_text') inputText: string, @Res({ passthrough: true }) reply: FastifyReply): Promise<{ result: string }> {
    return this.predict.predict(this.model, inputText, reply);
  }
}
