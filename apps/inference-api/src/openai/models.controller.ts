import { Controller, Get, Inject, Param, Req } from '@nestjs/common';
import { RouteSchema } from '@nestjs/platform-fastify';
import { ApiDocs } from '../common/api-docs.js';
import type { FastifyRequest } from 'fastify';
import { ApiError } from '../common/api-error.js';
import { keyAllowsModel } from '../common/api-keys.js';
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
  list(@Req() request: FastifyRequest): ModelCatalog['list'] {
    // A named key with a model list (API_KEYS_FILE) sees only those models.
    if (request.apiKey?.models === undefined) return this.catalog.list;
    return { object: 'list', data: this.catalog.list.data.filter((card) => keyAllowsModel(request, card.id)) };
  }

  @Get(':model')
  @RouteSchema({ response: { 200: modelSchema } })
  @ApiDocs((s) => [
    s.ApiOperation({ summary: 'Describe one model' }),
    s.ApiParam({ name: 'model', example: 'tiny-llama' }),
    s.ApiOkResponse({ schema: ref('Model') }),
    s.ApiNotFoundResponse({ description: 'Unknown model', schema: ref('ErrorResponse') }),
  ])
  get(@Param('model') model: string, @Req() request: FastifyRequest): ModelCard {
    // An alias describes the model it names.
    const name = this.catalog.resolve(model);
    const card = name === undefined ? undefined : this.catalog.get(name);
    if (!card || !keyAllowsModel(request, card.id)) throw ApiError.modelNotFound(model);
    return card;
  }
}
