import type { IncomingHttpHeaders } from 'node:http';
import { Inject, Injectable, Optional } from '@nestjs/common';
import type { GenerationResult, TokenUsage } from '@infer/model-providers';
import type { FastifyReply } from 'fastify';
import { type CacheHeaders, ResponseCacheService, type ServedResult, type ServedStream, type Upstream } from '../cache/response-cache.service.js';
import { ResponseClient, SignalClient } from '../common/client-link.js';
import { type StreamTiming, USAGE_RECORDER, type UsageRecorder } from '../metrics/usage-recorder.js';
import { choiceJobs, mergeChoices } from './choices.js';
import { InferenceService, type InferenceJob } from './inference.service.js';
import {
  chatChunkFormatter,
  chatCompletionBody,
  batchUsage,
  chatCompletionBodyOf,
  completionId,
  textChunkFormatter,
  textCompletionBody,
  textCompletionBodyOf,
} from './openai-format.js';
import { type SseOptions, writeSse } from './sse-writer.js';

interface StreamFlags {
  stream?: boolean | null;
  stream_options?: { include_usage?: boolean } | null;
  /** Choices wanted (OpenAI's `n`); absent or 1: one. */
  n?: number | null;
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
    if (flags.n != null && flags.n > 1) return this.respondChoices([job], flags.n, flags, reply);
    const created = Math.floor(Date.now() / 1000);
    if (flags.stream) {
      const id = completionId(job.kind === 'chat' ? 'chatcmpl' : 'cmpl');
      const format = job.kind === 'chat' ? chatChunkFormatter(id, created, job.model) : textChunkFormatter(id, created, job.model);
      const includeUsage = flags.stream_options?.include_usage === true;
      const { parts, headers } = await this.stream(job, reply);
      await writeSse(reply, parts, format, { includeUsage, headers, onFinish: this.streamMetrics(job, reply) });
      return;
    }
    const result = await this.generate(job, reply);
    const body =
      job.kind === 'chat'
        ? chatCompletionBody(completionId('chatcmpl'), created, job.model, result)
        : textCompletionBody(completionId('cmpl'), created, job.model, result);
    await reply.send(body);
  }

  /** What a finished stream tells the metrics (METRICS_PORT): its usage and its timing; undefined without metrics. */
  streamMetrics(job: InferenceJob, reply: FastifyReply, choices = 1): SseOptions['onFinish'] {
    const usage = this.usage;
    if (usage === null) return undefined;
    return (tokens: TokenUsage, sent: CacheHeaders | undefined, timing: StreamTiming) => {
      const fromCache = sent?.['x-cache'] === 'HIT';
      usage.record(job.model, tokens, fromCache, reply.request.apiKey?.name);
      // With several choices the tokens of all of them share one interval: no per-token time.
      usage.streamTiming(job.model, timing, choices === 1 ? tokens.completionTokens : 0, fromCache);
    };
  }

  /** The whole result of a job (cache headers, when any, are set on `reply`). Also used by GET /predict. */
  async generate(job: InferenceJob, reply: FastifyReply): Promise<GenerationResult> {
    const client = new ResponseClient(reply.raw);
    if (!this.cache.enabled) {
      const result = await this.inference.generate(job, client.signal);
      this.usage?.record(job.model, result.usage, false, reply.request.apiKey?.name);
      return result;
    }
    const served = await this.cache.generate(job, reply.request.headers, this.upstream(job), client);
    if (served.headers) reply.headers(served.headers);
    this.usage?.record(job.model, served.result.usage, served.headers?.['x-cache'] === 'HIT', reply.request.apiKey?.name);
    return served.result;
  }

  /**
   * The whole result of a job run for no HTTP request (a background response): through the cache
   * like `generate`, stopped by `signal`. Returns whether the cache answered it (for the usage).
   */
  async generateDetached(job: InferenceJob, headers: IncomingHttpHeaders, signal: AbortSignal): Promise<{ result: GenerationResult; fromCache: boolean }> {
    if (!this.cache.enabled) return { result: await this.inference.generate(job, signal), fromCache: false };
    const served = await this.cache.generate(job, headers, this.upstream(job), new SignalClient(signal));
    return { result: served.result, fromCache: served.headers?.['x-cache'] === 'HIT' };
  }

  /**
   * The parts of a job's stream, from where the response cache decides (its `headers` to send with
   * the first part), for routes that write streams in their own format (POST /v1/responses). The
   * caller records the usage when the stream finishes.
   */
  openStream(job: InferenceJob, reply: FastifyReply): Promise<ServedStream> {
    return this.stream(job, reply);
  }

  private async stream(job: InferenceJob, reply: FastifyReply, client = new ResponseClient(reply.raw)): Promise<ServedStream> {
    if (!this.cache.enabled) return { parts: this.inference.stream(job, client.signal), headers: undefined };
    return this.cache.stream(job, reply.request.headers, this.upstream(job), client);
  }

  /** A completions batch (several prompts): `n` choices per prompt, numbered prompt after prompt, in one answer. */
  respondBatch(prompts: readonly InferenceJob[], flags: StreamFlags, reply: FastifyReply): Promise<void> {
    return this.respondChoices(prompts, flags.n ?? 1, flags, reply);
  }

  /**
   * `n` > 1 (or a batch): the choices are generated concurrently (see choiceJobs; `n` per prompt),
   * each through the cache like a request of its own, and answered together: one body with all the
   * choices, or one stream whose chunks carry their choice's index. When one choice fails, the
   * others are stopped and the request fails with that error.
   */
  private async respondChoices(prompts: readonly InferenceJob[], perPrompt: number, flags: StreamFlags, reply: FastifyReply): Promise<void> {
    const created = Math.floor(Date.now() / 1000);
    const job = prompts[0] as InferenceJob;
    const jobs = prompts.flatMap((prompt) => choiceJobs(prompt, perPrompt));
    const n = jobs.length;
    const usageOf = (usages: readonly TokenUsage[]): TokenUsage => batchUsage(usages, perPrompt);
    // One 'close' listener per choice (its ResponseClient) on the same response.
    reply.raw.setMaxListeners(reply.raw.getMaxListeners() + n);
    const clients = jobs.map(() => new ResponseClient(reply.raw));
    const stopAll = (): void => {
      for (const client of clients) client.leave();
    };
    if (flags.stream) {
      const id = completionId(job.kind === 'chat' ? 'chatcmpl' : 'cmpl');
      const format = job.kind === 'chat' ? chatChunkFormatter(id, created, job.model) : textChunkFormatter(id, created, job.model);
      let streams: ServedStream[];
      try {
        streams = await Promise.all(jobs.map((choiceJob, i) => this.stream(choiceJob, reply, clients[i])));
      } catch (error) {
        stopAll();
        throw error;
      }
      const headers = (): CacheHeaders | undefined =>
        combinedCacheHeaders(streams.map((s) => (typeof s.headers === 'function' ? s.headers() : s.headers)));
      const onFinish = this.streamMetrics(job, reply, n);
      const outcome = await writeSse(reply, mergeChoices(streams.map((s) => s.parts)), format, {
        includeUsage: flags.stream_options?.include_usage === true,
        headers,
        onFinish,
        choices: n,
        usageOf,
      }).catch((error: unknown) => {
        stopAll();
        throw error;
      });
      if (outcome !== 'completed') stopAll();
      return;
    }
    let served: ServedResult[];
    try {
      served = await Promise.all(
        jobs.map(async (choiceJob, i) => {
          const client = clients[i] as ResponseClient;
          if (this.cache.enabled) return this.cache.generate(choiceJob, reply.request.headers, this.upstream(choiceJob), client);
          return { result: await this.inference.generate(choiceJob, client.signal), headers: undefined };
        }),
      );
    } catch (error) {
      stopAll();
      throw error;
    }
    const cacheHeaders = combinedCacheHeaders(served.map((s) => s.headers));
    if (cacheHeaders) reply.headers(cacheHeaders);
    const results = served.map((s) => s.result);
    this.usage?.record(job.model, usageOf(results.map((r) => r.usage)), cacheHeaders?.['x-cache'] === 'HIT', reply.request.apiKey?.name);
    const body =
      job.kind === 'chat'
        ? chatCompletionBodyOf(completionId('chatcmpl'), created, job.model, results)
        : textCompletionBodyOf(completionId('cmpl'), created, job.model, results, perPrompt);
    await reply.send(body);
  }

  private upstream(job: InferenceJob): Upstream {
    return {
      generate: (signal) => this.inference.generate(job, signal),
      stream: (signal) => this.inference.stream(job, signal),
    };
  }
}

/**
 * The cache headers of a response made of several choices: MISS when any choice reached the model,
 * else HIT (with the oldest entry's age) when all came from the cache, else BYPASS.
 */
export function combinedCacheHeaders(all: ReadonlyArray<CacheHeaders | undefined>): CacheHeaders | undefined {
  let combined: CacheHeaders | undefined;
  for (const headers of all) {
    if (headers === undefined) continue;
    const status = headers['x-cache'];
    if (status === 'MISS') return headers;
    if (combined === undefined || (status === 'HIT' && (combined['x-cache'] !== 'HIT' || Number(headers['age'] ?? 0) > Number(combined['age'] ?? 0)))) {
      combined = headers;
    }
  }
  return combined;
}
