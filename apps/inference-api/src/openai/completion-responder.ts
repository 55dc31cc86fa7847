import { Injectable } from '@nestjs/common';
import type { FastifyReply } from 'fastify';
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

/** Runs an inference job and writes the OpenAI response: JSON, or SSE when `stream` is set. */
@Injectable()
export class CompletionResponder {
  constructor(private readonly inference: InferenceService) {}

  async respond(job: InferenceJob, flags: StreamFlags, reply: FastifyReply): Promise<void> {
    const signal = clientAbortSignal(reply);
    const created = Math.floor(Date.now() / 1000);
    if (flags.stream) {
      const id = completionId(job.kind === 'chat' ? 'chatcmpl' : 'cmpl');
      const format = job.kind === 'chat' ? chatChunkFormatter(id, created, job.model) : textChunkFormatter(id, created, job.model);
      await writeSse(reply, this.inference.stream(job, signal), format, { includeUsage: flags.stream_options?.include_usage === true });
      return;
    }
    const result = await this.inference.generate(job, signal);
    const body =
      job.kind === 'chat'
        ? chatCompletionBody(completionId('chatcmpl'), created, job.model, result)
        : textCompletionBody(completionId('cmpl'), created, job.model, result);
    await reply.send(body);
  }
}
