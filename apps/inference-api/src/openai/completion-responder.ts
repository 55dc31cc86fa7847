import { Inject, Injectable, Optional } from '@nestjs/common';
import type { GenerationResult, TokenUsage } from '@infer/model-providers';
import type { FastifyReply } from 'fastify';
import { type CacheHeaders, ResponseCacheService, type ServedStream, type Upstream } from '../cache/response-cache.service.js';
import { ResponseClient } from '../common/client-link.js';
import { USAGE_RECORDER, type UsageRecorder } from '../metrics/usage-recorder.js';
import { InferenceService, type InferenceJob } from './inference.service.js';
import {
  chatChunkFormatter,
  chatCompletionBody,
  completionId,
  textChunkFormatter,
  textCompletionBody,
} from './openai-format.js';
import { writeSse } from './sse-writer.js';

interface StreamFlags {
  stream?: boolean | null;
  stream_options?: { include_usage?: boolean } | null;
}

/**
 * Runs an inference job and writes the OpenAI response: JSON, or SSE when `stream` is set. The
 * response cache (when enabled) decides where the result comes from (entry, identical request in
 * flight, upstream) and which `x-cache`/`age` headers go with it. The client is watched by a
 * ResponseClient: its AbortSignal is created only when an upstream call needs it.
 */
@Injectable()
export class CompletionResponder {
  constructor(
    private readonly inference: InferenceService,
    private readonly cache: ResponseCacheService,
    /** Set with METRICS_PORT (metrics module): told the token usage of every answer. */
    @Optional() @Inject(USAGE_RECORDER) private readonly usage: UsageRecorder | null = null,
  ) {}

  async respond(job: InferenceJob, flags: StreamFlags, reply: FastifyReply): Promise<void> {
    const created = Math.floor(Date.now() / 1000);
    if (flags.stream) {
      const id = completionId(job.kind === 'chat' ? 'chatcmpl' : 'cmpl');
      const format = job.kind === 'chat' ? chatChunkFormatter(id, created, job.model) : textChunkFormatter(id, created, job.model);
      const includeUsage = flags.stream_options?.include_usage === true;
      const { parts, headers } = await this.stream(job, reply);
      const usage = this.usage;
      const onFinish =
        usage === null ? undefined : (tokens: TokenUsage, sent: CacheHeaders | undefined) => usage.record(job.model, tokens, sent?.['x-cache'] === 'HIT');
      await writeSse(reply, parts, format, { includeUsage, headers, onFinish });
      return;
    }
    const result = await this.generate(job, reply);
    const body =
      job.kind === 'chat'
        ? chatCompletionBody(completionId('chatcmpl'), created, job.model, result)
        : textCompletionBody(completionId('cmpl'), created, job.model, result);
    await reply.send(body);
  }

  /** The whole result of a job (cache headers, when any, are set on `reply`). Also used by GET /predict. */
  async generate(job: InferenceJob, reply: FastifyReply): Promise<GenerationResult> {
    const client = new ResponseClient(reply.raw);
    if (!this.cache.enabled) {
      const result = await this.inference.generate(job, client.signal);
      this.usage?.record(job.model, result.usage, false);
      return result;
    }
    const served = await this.cache.generate(job, reply.request.headers, this.upstream(job), client);
    if (served.headers) reply.headers(served.headers);
    this.usage?.record(job.model, served.result.usage, served.headers?.['x-cache'] === 'HIT');
    return served.result;
  }

  private async stream(job: InferenceJob, reply: FastifyReply): Promise<ServedStream> {
    const client = new ResponseClient(reply.raw);
    if (!this.cache.enabled) return { parts: this.inference.stream(job, client.signal), headers: undefined };
    return this.cache.stream(job, reply.request.headers, this.upstream(job), client);
  }

  private upstream(job: InferenceJob): Upstream {
    return {
      generate: (signal) => this.inference.generate(job, signal),
      stream: (signal) => this.inference.stream(job, signal),
    };
  }
}
