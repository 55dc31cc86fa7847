import { Injectable } from '@nestjs/common';
import type { FastifyReply } from 'fastify';
import { ResponseClient } from '../cache/client-link.js';
import { ResponseCacheService, type Upstream } from '../cache/response-cache.service.js';
import { clientAbortSignal } from '../common/client-abort.js';
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
 * response cache decides where the result comes from (entry, identical request in flight, upstream)
 * and which `x-cache`/`age` headers go with it.
 */
@Injectable()
export class CompletionResponder {
  constructor(
    private readonly inference: InferenceService,
    private readonly cache: ResponseCacheService,
  ) {}

  async respond(job: InferenceJob, flags: StreamFlags, reply: FastifyReply): Promise<void> {
    const created = Math.floor(Date.now() / 1000);
    // With the cache on, the client is watched by a ResponseClient: a request answered from the
    // cache never creates an AbortSignal, and one that leads a shared call lends it its controller.
    const client = this.cache.enabled ? new ResponseClient(reply.raw) : undefined;
    if (flags.stream) {
      const id = completionId(job.kind === 'chat' ? 'chatcmpl' : 'cmpl');
      const format = job.kind === 'chat' ? chatChunkFormatter(id, created, job.model) : textChunkFormatter(id, created, job.model);
      const includeUsage = flags.stream_options?.include_usage === true;
      if (!client) {
        await writeSse(reply, this.inference.stream(job, clientAbortSignal(reply)), format, { includeUsage });
        return;
      }
      const served = await this.cache.stream(job, reply.request.headers, this.upstream(job), client);
      await writeSse(reply, served.parts, format, served.headers ? { includeUsage, headers: served.headers } : { includeUsage });
      return;
    }
    let result;
    if (client) {
      const served = await this.cache.generate(job, reply.request.headers, this.upstream(job), client);
      if (served.headers) reply.headers(served.headers);
      result = served.result;
    } else {
      result = await this.inference.generate(job, clientAbortSignal(reply));
    }
    const body =
      job.kind === 'chat'
        ? chatCompletionBody(completionId('chatcmpl'), created, job.model, result)
        : textCompletionBody(completionId('cmpl'), created, job.model, result);
    await reply.send(body);
  }

  private upstream(job: InferenceJob): Upstream {
    return {
      generate: (signal) => this.inference.generate(job, signal),
      stream: (signal) => this.inference.stream(job, signal),
    };
  }
}
