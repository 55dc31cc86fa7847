import type { ServerResponse } from 'node:http';
import type { StreamPart, TokenUsage } from '@infer/model-providers';
import type { FastifyReply } from 'fastify';
import { mapError } from '../common/error-mapping.js';
import type { StreamTiming } from '../metrics/usage-recorder.js';
import { type ChunkFormatter, choicesUsage } from './openai-format.js';

export interface SseOptions {
  readonly includeUsage: boolean;
  /**
   * Extra response headers (e.g. X-Cache). A function is called once the first part is there, just
   * before the headers go out (the response cache only then knows whether it was a hit).
   */
  readonly headers?: Readonly<Record<string, string>> | (() => Readonly<Record<string, string>> | undefined);
  /** Called with the stream's usage, the extra headers that were sent and its timing, when its finish part is written (metrics). */
  readonly onFinish?: (usage: TokenUsage, headers: Readonly<Record<string, string>> | undefined, timing: StreamTiming) => void;
  /**
   * Choices in the stream (`n`, default 1). With several, parts carry their choice's `choice` index
   * (see ChoicePart); the usage chunk and `onFinish` come once every choice has finished, with the
   * request's usage (the prompt once, the completion tokens of all choices).
   */
  readonly choices?: number;
  /** How the choices' usages add up (default choicesUsage: one prompt, every completion; a completions batch: batchUsage). */
  readonly usageOf?: (usages: readonly TokenUsage[]) => TokenUsage;
}

/** A part of choice `choice` of a stream with several choices (absent: choice 0). */
export type ChoicePart = StreamPart & { readonly choice?: number };

export type SseOutcome = 'completed' | 'aborted' | 'failed';

/**
 * Writes a provider stream to the client as OpenAI server-sent events and ends with
 * `data: [DONE]`. Takes over the raw response (Fastify's reply is hijacked). Honours
 * backpressure. An error after the headers went out is reported in-band as
 * `data: {"error":...}` (as OpenAI does) and the stream ends without [DONE].
 */
export async function writeSse(
  reply: FastifyReply,
  parts: AsyncIterable<ChoicePart>,
  format: ChunkFormatter,
  options: SseOptions,
): Promise<SseOutcome> {
  const res = reply.raw;
  const iterator = parts[Symbol.asyncIterator]();
  let first: IteratorResult<ChoicePart>;
  // Wait for the first part before sending headers: an error here (unknown upstream failure,
  // all deployments down) still gets a proper HTTP status, and the router could retry.
  first = await iterator.next();
  const firstPartMs = reply.elapsedTime;

  const extraHeaders = typeof options.headers === 'function' ? options.headers() : options.headers;
  openSse(reply, extraHeaders);
  const choices = options.choices ?? 1;
  // With several choices: each one's usage, by index, until the last finishes.
  const usages: TokenUsage[] | undefined = choices > 1 ? [] : undefined;
  let finished = 0;
  try {
    for (let index = 0; index < choices; index++) {
      const start = format.start(index);
      if (start !== undefined) await send(res, start);
    }
    for (;;) {
      if (first.done) break;
      const part = first.value;
      const index = part.choice ?? 0;
      if (part.type === 'delta') {
        // A chunk with logprobs is sent even without text (a token that is part of a character).
        if ((part.text.length > 0 || part.logprobs !== undefined) && !(await send(res, format.delta(part.text, part.logprobs, index)))) return 'aborted';
      } else if (part.type === 'tool_call') {
        const event = format.toolCall(part, index);
        if (event !== undefined && !(await send(res, event))) return 'aborted';
      } else if (part.type === 'refusal') {
        const event = format.refusal(part.text, index);
        if (event !== undefined && !(await send(res, event))) return 'aborted';
      } else if (usages === undefined) {
        options.onFinish?.(part.usage, extraHeaders, { firstPartMs, finishMs: reply.elapsedTime });
        if (!(await send(res, format.finish(part.finishReason, index)))) return 'aborted';
        if (options.includeUsage && !(await send(res, format.usage(part.usage)))) return 'aborted';
      } else {
        usages[index] = part.usage;
        finished += 1;
        if (!(await send(res, format.finish(part.finishReason, index)))) return 'aborted';
        if (finished === choices) {
          const usage = (options.usageOf ?? choicesUsage)(usages);
          options.onFinish?.(usage, extraHeaders, { firstPartMs, finishMs: reply.elapsedTime });
          if (options.includeUsage && !(await send(res, format.usage(usage)))) return 'aborted';
        }
      }
      first = await iterator.next();
    }
    if (res.destroyed) return 'aborted';
    res.end('data: [DONE]\n\n');
    return 'completed';
  } catch (error) {
    if (res.destroyed || res.writableEnded) return 'aborted';
    const { body, unexpected } = mapError(error, reply.request.id);
    if (unexpected) reply.request.log.error({ err: error }, 'stream failed');
    else reply.request.log.warn({ code: body.error.code, detail: error instanceof Error ? error.message : String(error) }, 'stream failed');
    res.end(`data: ${JSON.stringify(body)}\n\n`);
    return 'failed';
  } finally {
    await iterator.return?.();
  }
}

/**
 * Takes over the raw response (Fastify's reply is hijacked) and sends the head of an SSE stream: 200,
 * the headers set on the reply so far, `extraHeaders` (e.g. X-Cache), and the SSE ones.
 */
export function openSse(reply: FastifyReply, extraHeaders: Readonly<Record<string, string>> | undefined): void {
  reply.hijack();
  reply.raw.writeHead(200, {
    ...(reply.getHeaders() as Record<string, string>),
    ...extraHeaders,
    'content-type': 'text/event-stream; charset=utf-8',
    'cache-control': 'no-cache',
    connection: 'keep-alive',
    'x-accel-buffering': 'no',
  });
}

/** Writes one event; resolves false if the client went away. */
function send(res: ServerResponse, data: string): Promise<boolean> | boolean {
  if (res.destroyed) return false;
  if (res.write(`data: ${data}\n\n`)) return true;
  return drained(res);
}

/**
 * Writes whole SSE frames (any event form: `event:` lines, several frames at once) with the same
 * backpressure as the completion streams; resolves false if the client went away. For streams
 * with their own framing (/v1/responses).
 */
export function sendFrames(res: ServerResponse, frames: string): Promise<boolean> | boolean {
  if (res.destroyed) return false;
  if (res.write(frames)) return true;
  return drained(res);
}

/** Resolves true once `res` drained its buffer, false if it closed first. */
function drained(res: ServerResponse): Promise<boolean> {
  return new Promise((resolve) => {
    const done = (ok: boolean) => {
      res.off('drain', onDrain);
      res.off('close', onClose);
      resolve(ok);
    };
    const onDrain = () => done(true);
    const onClose = () => done(false);
    res.on('drain', onDrain);
    res.on('close', onClose);
  });
}
