import { Injectable, type OnModuleInit } from '@nestjs/common';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { errorResponse, inferenceErrorResponses } from '../common/api-docs.js';
import { HotRoutes } from '../common/hot-routes.js';
import { CompletionResponder } from './completion-responder.js';
import { InferenceService } from './inference.service.js';
import {
  type ChatCompletionBody,
  chatCompletionRequestSchema,
  chatCompletionSchema,
  type CompletionBody,
  completionRequestSchema,
  ref,
  textCompletionSchema,
} from './openai.schemas.js';

/** POST /v1/chat/completions and POST /v1/completions, served by Fastify directly (see HotRoutes). */
@Injectable()
export class OpenAIRoutes implements OnModuleInit {
  constructor(
    private readonly routes: HotRoutes,
    private readonly inference: InferenceService,
    private readonly responder: CompletionResponder,
  ) {}

  onModuleInit(): void {
    this.routes.register({
      method: 'POST',
      url: '/v1/chat/completions',
      schema: { body: chatCompletionRequestSchema, response: { 200: chatCompletionSchema } },
      handler: async (request: FastifyRequest, reply: FastifyReply) => {
        const body = request.body as ChatCompletionBody;
        await this.responder.respond(this.inference.chatJob(body), body, reply);
        return reply;
      },
      openapi: {
        tags: ['OpenAI'],
        operationId: 'createChatCompletion',
        summary: 'Create a chat completion',
        description:
          'OpenAI-compatible. With `stream: true` the response is `text/event-stream`: `data: <ChatCompletionChunk>` events, ' +
          'a last chunk with `usage` when `stream_options.include_usage` is set, then `data: [DONE]`.',
        requestBody: { required: true, content: { 'application/json': { schema: ref('CreateChatCompletionRequest') } } },
        responses: {
          200: {
            description: 'The completion (JSON), or a stream of chunks (SSE) when `stream: true`.',
            content: {
              'application/json': { schema: ref('ChatCompletion') },
              'text/event-stream': { schema: ref('ChatCompletionChunk') },
            },
          },
          400: errorResponse('Invalid request'),
          404: errorResponse('Unknown model'),
          ...inferenceErrorResponses,
        },
      },
    });
    this.routes.register({
      method: 'POST',
      url: '/v1/completions',
      schema: { body: completionRequestSchema, response: { 200: textCompletionSchema } },
      handler: async (request: FastifyRequest, reply: FastifyReply) => {
        const body = request.body as CompletionBody;
        await this.responder.respond(this.inference.completionJob(body), body, reply);
        return reply;
      },
      openapi: {
        tags: ['OpenAI'],
        operationId: 'createCompletion',
        summary: 'Create a (legacy) text completion',
        description: 'OpenAI-compatible. `stream: true` answers with server-sent events ending in `data: [DONE]`.',
        requestBody: { required: true, content: { 'application/json': { schema: ref('CreateCompletionRequest') } } },
        responses: {
          200: {
            description: 'The completion (JSON), or a stream of chunks (SSE) when `stream: true`.',
            content: {
              'application/json': { schema: ref('TextCompletion') },
              'text/event-stream': { schema: ref('TextCompletion') },
            },
          },
          400: errorResponse('Invalid request'),
          404: errorResponse('Unknown model'),
          ...inferenceErrorResponses,
        },
      },
    });
  }
}
