import { Inject, Injectable, Logger, type OnModuleInit, Optional } from '@nestjs/common';
import { type EmbeddingResult, encodeBase64Floats } from '@infer/model-providers';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { EMBEDDINGS_CACHE, type EmbeddingsCache } from '../cache/embeddings-cache.js';
import { errorResponse, inferenceErrorResponses } from '../common/api-docs.js';
import { ResponseClient } from '../common/client-link.js';
import { HotRoutes } from '../common/hot-routes.js';
import { USAGE_RECORDER, type UsageRecorder } from '../metrics/usage-recorder.js';
import { InferenceService } from './inference.service.js';
import { type EmbeddingBody, embeddingRequestSchema, ref } from './openai.schemas.js';

/**
 * POST /v1/embeddings, served by Fastify directly (see HotRoutes), through the embeddings cache when
 * it is on (EmbeddingsCache: `x-cache`, `age`). The body is serialised with JSON.stringify (no
 * response schema: a vector is an array or, with `encoding_format: "base64"`, a string).
 */
@Injectable()
export class EmbeddingsRoutes implements OnModuleInit {
  constructor(
    private readonly routes: HotRoutes,
    private readonly inference: InferenceService,
    /** null: the cache or CACHE_EMBEDDINGS is off. */
    @Inject(EMBEDDINGS_CACHE) private readonly cache: EmbeddingsCache | null,
    @Optional() @Inject(USAGE_RECORDER) private readonly usage: UsageRecorder | null = null,
  ) {}

  onModuleInit(): void {
    if (this.cache !== null) new Logger('EmbeddingsCache').log(this.cache.description);
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
    const client = new ResponseClient(reply.raw);
    let result: EmbeddingResult;
    let hit = false;
    if (this.cache === null) {
      result = await this.inference.embed(job, client.signal);
    } else {
      const served = await this.cache.embed(job, reply.request.headers, (signal) => this.inference.embed(job, signal), client);
      result = served.result;
      if (served.headers !== undefined) {
        reply.headers(served.headers);
        hit = served.headers['x-cache'] === 'HIT';
      }
    }
    const promptTokens = result.usage.promptTokens;
    this.usage?.record(job.model, { promptTokens, completionTokens: 0 }, hit, reply.request.apiKey?.name);
    const base64 = job.encoding === 'base64';
    return {
      object: 'list',
      data: result.embeddings.map((vector, index) => ({ object: 'embedding', index, embedding: base64 ? encodeBase64Floats(vector) : vector })),
      model: job.model,
      usage: { prompt_tokens: promptTokens, total_tokens: promptTokens },
    };
  }
}
