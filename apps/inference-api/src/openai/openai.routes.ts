import { Injectable, type OnModuleInit } from '@nestjs/common';
import type { FastifyReply, FastifyRequest, FastifySchema } from 'fastify';
import { errorResponse, inferenceErrorResponses } from '../common/api-docs.js';
import { type HotRoute, HotRoutes } from '../common/hot-routes.js';
import { CompletionResponder } from './completion-responder.js';
import { type InferenceJob, InferenceService } from './inference.service.js';
import {
  type ChatCompletionBody,
  chatCompletionRequestSchema,
  chatCompletionSchema,
  type CompletionBody,
  completionRequestSchema,
  type OpenApiComponentName,
  ref,
  textCompletionSchema,
} from './openai.schemas.js';

interface CompletionRouteSpec<Body> {
  readonly url: string;
  readonly schema: FastifySchema;
  /**
   * The validated body as an inference job, or one per prompt of a completions batch (throws
   * ApiError for what the schema cannot express).
   */
  readonly job: (body: Body) => InferenceJob | readonly InferenceJob[];
  readonly operationId: string;
  readonly summary: string;
  readonly description: string;
  readonly request: OpenApiComponentName;
  readonly json: OpenApiComponentName;
  readonly chunk: OpenApiComponentName;
}

/** POST /v1/chat/completions and POST /v1/completions, served by Fastify directly (see HotRoutes). */
@Injectable()
export class OpenAIRoutes implements OnModuleInit {
  constructor(
    private readonly routes: HotRoutes,
    private readonly inference: InferenceService,
    private readonly responder: CompletionResponder,
  ) {}

  onModuleInit(): void {
    this.routes.register(
      this.completionRoute<ChatCompletionBody>({
        url: '/v1/chat/completions',
        schema: { body: chatCompletionRequestSchema, response: { 200: chatCompletionSchema } },
        job: (body) => this.inference.chatJob(body),
        operationId: 'createChatCompletion',
        summary: 'Create a chat completion',
        description:
          'OpenAI-compatible. With `stream: true` the response is `text/event-stream`: `data: <ChatCompletionChunk>` events, ' +
          'a last chunk with `usage` when `stream_options.include_usage` is set, then `data: [DONE]`.',
        request: 'CreateChatCompletionRequest',
        json: 'ChatCompletion',
        chunk: 'ChatCompletionChunk',
      }),
    );
    this.routes.register(
      this.completionRoute<CompletionBody>({
        url: '/v1/completions',
        schema: { body: completionRequestSchema, response: { 200: textCompletionSchema } },
        job: (body) => this.inference.completionJobs(body),
        operationId: 'createCompletion',
        summary: 'Create a (legacy) text completion',
        description:
          'OpenAI-compatible. `stream: true` answers with server-sent events ending in `data: [DONE]`. `prompt` may be a batch ' +
          '(an array of strings): `n` choices per prompt, numbered prompt after prompt; usage adds up the prompts.',
        request: 'CreateCompletionRequest',
        json: 'TextCompletion',
        chunk: 'TextCompletion',
      }),
    );
  }

  private completionRoute<Body extends ChatCompletionBody | CompletionBody>(spec: CompletionRouteSpec<Body>): HotRoute {
    return {
      method: 'POST',
      url: spec.url,
      schema: spec.schema,
      handler: async (request: FastifyRequest, reply: FastifyReply) => {
        const body = request.body as Body;
        const job = spec.job(body);
        if (!isBatch(job)) await this.responder.respond(job, body, reply);
        else if (job.length === 1) await this.responder.respond(job[0] as InferenceJob, body, reply);
        else await this.responder.respondBatch(job, body, reply);
        return reply;
      },
      openapi: {
        tags: ['OpenAI'],
        operationId: spec.operationId,
        summary: spec.summary,
        description: spec.description,
        requestBody: { required: true, content: { 'application/json': { schema: ref(spec.request) } } },
        responses: {
          200: {
            description: 'The completion (JSON), or a stream of chunks (SSE) when `stream: true`.',
            content: { 'application/json': { schema: ref(spec.json) }, 'text/event-stream': { schema: ref(spec.chunk) } },
          },
          400: errorResponse('Invalid request'),
          404: errorResponse('Unknown model'),
          ...inferenceErrorResponses,
        },
      },
    };
  }
}

function isBatch(job: InferenceJob | readonly InferenceJob[]): job is readonly InferenceJob[] {
  return Array.isArray(job);
}
