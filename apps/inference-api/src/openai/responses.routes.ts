import { Inject, Injectable, type OnModuleInit, Optional } from '@nestjs/common';
import type { StreamPart } from '@infer/model-providers';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { errorResponse, inferenceErrorResponses } from '../common/api-docs.js';
import { mapError } from '../common/error-mapping.js';
import { HotRoutes } from '../common/hot-routes.js';
import { USAGE_RECORDER, type UsageRecorder } from '../metrics/usage-recorder.js';
import { CompletionResponder } from './completion-responder.js';
import { type InferenceJob, InferenceService } from './inference.service.js';
import { ref } from './openai.schemas.js';
import { type ResponseHead, ResponseStreamEvents, responseBody, responseEcho, responseId } from './responses-format.js';
import { responsesChatBody, responsesError } from './responses-request.js';
import { type ResponsesBody, responsesRequestSchema } from './responses.schemas.js';
import { openSse, sendFrames } from './sse-writer.js';

/**
 * POST /v1/responses: OpenAI's Responses API, the stateless text and function-calling subset, served
 * by Fastify directly (see HotRoutes). Every request becomes a chat job (responsesChatBody, then the
 * chat route's own checks in InferenceService.chatJob) and runs like a chat completion: the same
 * router, response cache (x-cache; entries shared with identical chat requests) and providers. The
 * answer is a `Response` object, or its server-sent events. Nothing is stored.
 */
@Injectable()
export class ResponsesRoutes implements OnModuleInit {
  constructor(
    private readonly routes: HotRoutes,
    private readonly inference: InferenceService,
    private readonly responder: CompletionResponder,
    /** Set with METRICS_PORT: told the token usage of every answer (JSON answers: by the responder). */
    @Optional() @Inject(USAGE_RECORDER) private readonly usage: UsageRecorder | null = null,
  ) {}

  onModuleInit(): void {
    this.routes.register({
      method: 'POST',
      url: '/v1/responses',
      schema: { body: responsesRequestSchema },
      handler: (request: FastifyRequest, reply: FastifyReply) => this.respond(request.body as ResponsesBody, reply),
      openapi: {
        tags: ['OpenAI'],
        operationId: 'createResponse',
        summary: 'Create a model response (Responses API)',
        description:
          "OpenAI's Responses API, stateless: `input` as a text or as message, `function_call` and `function_call_output` items, " +
          '`instructions`, `max_output_tokens`, `temperature`, `top_p`, function `tools`, `tool_choice`, `parallel_tool_calls`, ' +
          '`text.format` (JSON, JSON Schema), `metadata` (echoed). Runs as a chat completion (same models, cache and checks). ' +
          'Refused (400 `unsupported_parameter`): `previous_response_id`, `conversation`, `background: true`, built-in tools, ' +
          '`reasoning`, a non-empty `include`, `prompt`, `truncation: "auto"`. Responses are not stored (`store: false`; no ' +
          '`GET /v1/responses/{id}`). With `stream: true`: `event: <type>` / `data: <ResponseStreamEvent>` frames ending with ' +
          '`response.completed` (or `response.incomplete`), no `[DONE]`.',
        requestBody: { required: true, content: { 'application/json': { schema: ref('CreateResponseRequest') } } },
        responses: {
          200: {
            description: 'The response (JSON), or its events (SSE) when `stream: true`.',
            content: { 'application/json': { schema: ref('Response') }, 'text/event-stream': { schema: ref('ResponseStreamEvent') } },
          },
          400: errorResponse('Invalid request, or a field this server does not serve'),
          404: errorResponse('Unknown model'),
          ...inferenceErrorResponses,
        },
      },
    });
  }

  private async respond(body: ResponsesBody, reply: FastifyReply): Promise<unknown> {
    const { chat, sources } = responsesChatBody(body);
    let job: InferenceJob;
    try {
      job = this.inference.chatJob(chat);
    } catch (error) {
      throw responsesError(error, sources);
    }
    const head: ResponseHead = { id: responseId(), createdAt: Math.floor(Date.now() / 1000), model: job.model, echo: responseEcho(body) };
    try {
      if (body.stream === true) {
        await this.stream(job, head, sources, reply);
        return reply;
      }
      return responseBody(head, await this.responder.generate(job, reply));
    } catch (error) {
      throw responsesError(error, sources);
    }
  }

  /**
   * Writes the job's stream as Responses events. As the chat streams (writeSse): the headers go out
   * with the first part (an error before it is an ordinary HTTP error), writes honour backpressure,
   * a client that leaves stops the generation. An error after the headers is an `error` event then
   * `response.failed`, and the stream ends.
   */
  private async stream(job: InferenceJob, head: ResponseHead, sources: readonly number[], reply: FastifyReply): Promise<void> {
    const served = await this.responder.openStream(job, reply);
    const iterator = served.parts[Symbol.asyncIterator]();
    let next: IteratorResult<StreamPart> = await iterator.next();

    const headers = typeof served.headers === 'function' ? served.headers() : served.headers;
    openSse(reply, headers);
    const res = reply.raw;
    const events = new ResponseStreamEvents(head);
    try {
      if (!(await sendFrames(res, events.start()))) return;
      while (!next.done) {
        const part = next.value;
        if (part.type === 'finish') this.usage?.record(job.model, part.usage, headers?.['x-cache'] === 'HIT');
        const frames = events.part(part);
        if (frames.length > 0 && !(await sendFrames(res, frames))) return;
        next = await iterator.next();
      }
      if (!res.destroyed) res.end();
    } catch (error) {
      if (res.destroyed || res.writableEnded) return;
      const { status, body, unexpected } = mapError(responsesError(error, sources), reply.request.id);
      if (unexpected) reply.request.log.error({ err: error }, 'stream failed');
      else reply.request.log.warn({ code: body.error.code, msg: body.error.message }, 'stream failed');
      res.end(events.failed(status, body));
    } finally {
      await iterator.return?.();
    }
  }
}
