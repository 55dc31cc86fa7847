import { Body, Controller, HttpCode, Post, Res } from '@nestjs/common';
import { RouteSchema } from '@nestjs/platform-fastify';
import { ApiBadRequestResponse, ApiBody, ApiNotFoundResponse, ApiOkResponse, ApiOperation, ApiTags } from '@nestjs/swagger';
import type { FastifyReply } from 'fastify';
import { ApiErrorResponses } from '../common/api-docs.js';
import { CompletionResponder } from './completion-responder.js';
import { InferenceService } from './inference.service.js';
import { completionRequestSchema, type CompletionBody, ref, textCompletionSchema } from './openai.schemas.js';

@ApiTags('OpenAI')
@Controller('v1')
export class CompletionsController {
  constructor(
    private readonly inference: InferenceService,
    private readonly responder: CompletionResponder,
  ) {}

  @Post('completions')
  @HttpCode(200)
  @RouteSchema({ body: completionRequestSchema, response: { 200: textCompletionSchema } })
  @ApiOperation({
    summary: 'Create a (legacy) text completion',
    description: 'OpenAI-compatible. `stream: true` answers with server-sent events ending in `data: [DONE]`.',
  })
  @ApiBody({ schema: ref('CreateCompletionRequest') })
  @ApiOkResponse({
    description: 'The completion (JSON), or a stream of chunks (SSE) when `stream: true`.',
    content: {
      'application/json': { schema: ref('TextCompletion') },
      'text/event-stream': { schema: ref('TextCompletion') },
    },
  })
  @ApiBadRequestResponse({ description: 'Invalid request', schema: ref('ErrorResponse') })
  @ApiNotFoundResponse({ description: 'Unknown model', schema: ref('ErrorResponse') })
  @ApiErrorResponses()
  async create(@Body() body: CompletionBody, @Res() reply: FastifyReply): Promise<void> {
    await this.responder.respond(this.inference.completionJob(body), body, reply);
  }
}
