import { Controller, Get, Inject, Param } from '@nestjs/common';
import { RouteSchema } from '@nestjs/platform-fastify';
import { ApiDocs } from '../common/api-docs.js';
import { ApiError } from '../common/api-error.js';
import type { ModelCard, ModelCatalog } from '../models/model-catalog.js';
import { MODEL_CATALOG } from '../models/models.tokens.js';
import { modelListSchema, modelSchema, ref } from './openai.schemas.js';

@ApiDocs((s) => [s.ApiTags('OpenAI')])
@Controller('v1/models')
export class ModelsController {
  constructor(@Inject(MODEL_CATALOG) private readonly catalog: ModelCatalog) {}

  @Get()
  @RouteSchema({ response: { 200: modelListSchema } })
  @ApiDocs((s) => [s.ApiOperation({ summary: 'List the models this server serves' }), s.ApiOkResponse({ schema: ref('ModelList') })])
  list(): ModelCatalog['list'] {
    return this.catalog.list;
  }

  @Get(':model')
  @RouteSchema({ response: { 200: modelSchema } })
  @ApiDocs((s) => [
    s.ApiOperation({ summary: 'Describe one model' }),
    s.ApiParam({ name: 'model', example: 'tiny-llama' }),
    s.ApiOkResponse({ schema: ref('Model') }),
    s.ApiNotFoundResponse({ description: 'Unknown model', schema: ref('ErrorResponse') }),
  ])
  get(@Param('model') model: string): ModelCard {
    const card = this.catalog.get(model);
    if (!card) throw ApiError.modelNotFound(model);
    return card;
  }
}
