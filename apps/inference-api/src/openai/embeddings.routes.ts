import { Inject, Injectable, type OnModuleInit, Optional } from '@nestjs/common';
import { encodeBase64Floats } from '@infer/model-providers';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { errorResponse, inferenceErrorResponses } from '../common/api-docs.js';
import { ResponseClient } from '../common/client-link.js';
import { HotRoutes } from '../common/hot-routes.js';
import { USAGE_RECORDER, type UsageRecorder } from '../metrics/usage-recorder.js';
import { InferenceService } from './inference.service.js';
import { type EmbeddingBody, embeddingRequestSchema, ref } from './openai.schemas.js';

/**
 * POST /v1/embeddings, served by Fastify directly (see HotRoutes). Not cached: the response cache
 * holds generations. The body is serialised with JSON.stringify (no response schema: a vector is
 * an array or, with `encoding_format: "base64"`, a string).
 */
@Injectable()
export class EmbeddingsRoutes implements OnModuleInit {
  constructor(
    private readonly routes: HotRoutes,
    private readonly inference: InferenceService,
    @Optional() @Inject(USAGE_RECORDER) private readonly usage: UsageRecorder | null = null,
  ) {}

  onModuleInit(): void {
    this.routes.register({
      method: 'POST',
      url: '/v1/embeddings',
      schema: { body: embeddingRequestSchema },
      handler: (request: FastifyRequest, reply: FastifyReply) => this.embeddings(request.body as EmbeddingBody, reply),
      openapi: {
        tags: ['OpenAI'],
        operationId: 'createEmbedding',
        summary: 'Create embeddings',
        description:
          'OpenAI-compatible. One unit-length vector per input. Served by llama-cpp models (the GGUF model in an embedding ' +
          'context) and by openai-compatible upstreams that serve `/embeddings`.',
        requestBody: { required: true, content: { 'application/json': { schema: ref('CreateEmbeddingRequest') } } },
        responses: {
          200: { description: 'The embeddings.', content: { 'application/json': { schema: ref('EmbeddingList') } } },
          400: errorResponse('Invalid request, or a model without embeddings'),
          404: errorResponse('Unknown model'),
          ...inferenceErrorResponses,
        },
      },
    });
  }

  private async embeddings(body: EmbeddingBody, reply: FastifyReply): Promise<unknown> {
    const job = this.inference.embeddingJob(body);
    const result = await this.inference.embed(job, new ResponseClient(reply.raw).signal);
    const promptTokens = result.usage.promptTokens;
    this.usage?.record(job.model, { promptTokens, completionTokens: 0 }, false);
    const base64 = job.encoding === 'base64';
    return {
      object: 'list',
      data: result.embeddings.map((vector, index) => ({ object: 'embedding', index, embedding: base64 ? encodeBase64Floats(vector) : vector })),
      model: job.model,
      usage: { prompt_tokens: promptTokens, total_tokens: promptTokens },
    };
  }
}
