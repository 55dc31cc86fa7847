import { Body, Controller, HttpCode, Post, Res } from '@nestjs/common';
import { RouteSchema } from '@nestjs/platform-fastify';
import { ApiBadRequestResponse, ApiBody, ApiNotFoundResponse, ApiOkResponse, ApiOperation, ApiTags } from '@nestjs/swagger';
import type { FastifyReply } from 'fastify';
import { ApiErrorResponses } from '../common/api-docs.js';
import { CompletionResponder } from './completion-responder.js';
import { InferenceService } from './inference.service.js';
import { chatCompletionRequestSchema, chatCompletionSchema, type ChatCompletionBody, ref } from './openai.schemas.js';

@ApiTags('OpenAI')
@Controller('v1')
export class ChatCompletionsController {
  constructor(
    private readonly inference: InferenceService,
    private readonly responder: CompletionResponder,
  ) {}

  @Post('chat/completions')
  @HttpCode(200)
  @RouteSchema({ body: chatCompletionRequestSchema, response: { 200: chatCompletionSchema } })
  @ApiOperation({
    summary: 'Create a chat completion',
    description:
      'OpenAI-compatible. With `stream: true` the response is `text/event-stream`: `data: <ChatCompletionChunk>` events, ' +
      'a last chunk with `usage` when `stream_options.include_usage` is set, then `data: [DONE]`.',
  })
  @ApiBody({ schema: ref('CreateChatCompletionRequest') })
  @ApiOkResponse({
    description: 'The completion (JSON), or a stream of chunks (SSE) when `stream: true`.',
    content: {
      'application/json': { schema: ref('ChatCompletion') },
      'text/event-stream': { schema: ref('ChatCompletionChunk') },
    },
  })
  @ApiBadRequestResponse({ description: 'Invalid request', schema: ref('ErrorResponse') })
  @ApiNotFoundResponse({ description: 'Unknown model', schema: ref('ErrorResponse') })
  @ApiErrorResponses()
  async create(@Body() body: ChatCompletionBody, @Res() reply: FastifyReply): Promise<void> {
    await this.responder.respond(this.inference.chatJob(body), body, reply);
  }
}
