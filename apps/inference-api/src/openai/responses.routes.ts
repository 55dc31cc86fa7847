import { Inject, Injectable, Logger, type OnModuleInit, Optional } from '@nestjs/common';
import type { StreamPart } from '@infer/model-providers';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { errorResponse, inferenceErrorResponses } from '../common/api-docs.js';
import { ApiError } from '../common/api-error.js';
import { mapError } from '../common/error-mapping.js';
import { HotRoutes } from '../common/hot-routes.js';
import { USAGE_RECORDER, type UsageRecorder } from '../metrics/usage-recorder.js';
import { CompletionResponder } from './completion-responder.js';
import { type InferenceJob, InferenceService } from './inference.service.js';
import { ref } from './openai.schemas.js';
import { RESPONSE_STORE, type ResponseStore, type StoredItem, type StoredResponse } from './response-store.js';
import {
  continuation,
  type ResponseHead,
  type ResponseObject,
  ResponseStreamEvents,
  responseBody,
  responseEcho,
  responseId,
  storedInput,
} from './responses-format.js';
import { responsesChatBody, responsesError } from './responses-request.js';
import {
  deletedResponseSchema,
  inputItemListQuerySchema,
  inputItemListSchema,
  type ResponsesBody,
  responseIdParamsSchema,
  responsesRequestSchema,
  retrieveResponseQuerySchema,
} from './responses.schemas.js';
import { openSse, sendFrames } from './sse-writer.js';

/** What a response to be stored needs besides its Response object. */
interface StoreTarget {
  readonly input: ResponsesBody['input'];
  readonly context: readonly StoredItem[];
  readonly owner: string | null;
}

/**
 * POST /v1/responses: OpenAI's Responses API, the text and function-calling subset, served
 * by Fastify directly (see HotRoutes). Every request becomes a chat job (responsesChatBody, then the
 * chat route's own checks in InferenceService.chatJob) and runs like a chat completion: the same
 * router, response cache (x-cache; entries shared with identical chat requests) and providers. The
 * answer is a `Response` object, or its server-sent events.
 *
 * Responses are stored (`store`, true by default as at OpenAI; RESPONSES_STORE_*) before the client
 * learns of them, so a client may continue one (`previous_response_id`: its conversation is put
 * before the new input) or read it back (GET /v1/responses/{id}, its input items, DELETE) at once,
 * from any process when the store is on Redis. With API_KEYS, a stored response is visible only to
 * the key that created it.
 */
@Injectable()
export class ResponsesRoutes implements OnModuleInit {
  constructor(
    private readonly routes: HotRoutes,
    private readonly inference: InferenceService,
    private readonly responder: CompletionResponder,
    /** null: RESPONSES_STORE_ENABLED=false. */
    @Inject(RESPONSE_STORE) private readonly store: ResponseStore | null,
    /** Set with METRICS_PORT: told the token usage of every answer (JSON answers: by the responder). */
    @Optional() @Inject(USAGE_RECORDER) private readonly usage: UsageRecorder | null = null,
  ) {}

  onModuleInit(): void {
    new Logger('ResponseStore').log(this.store?.description ?? 'responses are not stored (RESPONSES_STORE_ENABLED=false)');
    this.registerCreate();
    this.registerStored();
  }

  private registerCreate(): void {
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
          "OpenAI's Responses API: `input` as a text or as message, `function_call` and `function_call_output` items, " +
          '`instructions`, `max_output_tokens`, `temperature`, `top_p`, function `tools`, `tool_choice`, `parallel_tool_calls`, ' +
          '`text.format` (JSON, JSON Schema), `metadata` (echoed). Runs as a chat completion (same models, cache and checks). ' +
          'Stored unless `store: false` (see `GET /v1/responses/{id}`); `previous_response_id` continues a stored response ' +
          '(its conversation goes before `input`; its `instructions` do not carry over; unknown: 400 `previous_response_not_found`). ' +
          'Refused (400 `unsupported_parameter`): `conversation`, `background: true`, built-in tools, ' +
          '`reasoning`, a non-empty `include`, `prompt`, `truncation: "auto"`. With `stream: true`: `event: <type>` / ' +
          '`data: <ResponseStreamEvent>` frames ending with `response.completed` (or `response.incomplete`), no `[DONE]`.',
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

  /** GET /v1/responses/{id}, GET /v1/responses/{id}/input_items, DELETE /v1/responses/{id}. */
  private registerStored(): void {
    const idParam = { name: 'id', in: 'path' as const, required: true, schema: { type: 'string' as const }, example: 'resp_3f1c0a5e8b2d4c7f9a6e1b0d' };
    const notFound = errorResponse('No stored response with this id (or not for this API key)');
    this.routes.register({
      method: 'GET',
      url: '/v1/responses/:id',
      schema: { params: responseIdParamsSchema, querystring: retrieveResponseQuerySchema },
      handler: async (request: FastifyRequest) => {
        const { id } = request.params as { id: string };
        if ((request.query as { stream?: string }).stream === 'true') {
          throw ApiError.invalidRequest('Streaming a stored response again is not supported: leave out `stream`.', 'stream', 'unsupported_parameter');
        }
        return (await this.stored(id, request)).response;
      },
      openapi: {
        tags: ['OpenAI'],
        operationId: 'getResponse',
        summary: 'Retrieve a stored response',
        description: 'The `Response` object as it was answered (`store: true`). `stream=true` is refused (400).',
        parameters: [idParam],
        responses: {
          200: { description: 'The stored response.', content: { 'application/json': { schema: ref('Response') } } },
          404: notFound,
          503: errorResponse('The response store (Redis) is unavailable'),
        },
      },
    });
    this.routes.register({
      method: 'GET',
      url: '/v1/responses/:id/input_items',
      schema: { params: responseIdParamsSchema, querystring: inputItemListQuerySchema, response: { 200: inputItemListSchema } },
      handler: async (request: FastifyRequest) => {
        const { id } = request.params as { id: string };
        const query = request.query as { limit: string; order: 'asc' | 'desc'; after?: string };
        const limit = /^[0-9]{1,3}$/.test(query.limit) ? Number(query.limit) : 0;
        if (limit < 1 || limit > 100) throw ApiError.invalidRequest("Invalid query parameter 'limit': must be an integer from 1 to 100.", 'limit');
        const record = await this.stored(id, request);
        return itemList([...record.context, ...record.input], { limit, order: query.order, after: query.after });
      },
      openapi: {
        tags: ['OpenAI'],
        operationId: 'listInputItems',
        summary: 'List the input items of a stored response',
        description:
          'The items the model was given: the conversation of the responses it continues (`previous_response_id`), then its own ' +
          '`input`, each with an id; `instructions` are not items. Newest first unless `order=asc`; pages of `limit` (1–100, ' +
          'default 20) after the item id `after`.',
        parameters: [
          idParam,
          { name: 'limit', in: 'query', schema: { type: 'integer', minimum: 1, maximum: 100, default: 20 } },
          { name: 'order', in: 'query', schema: { type: 'string', enum: ['asc', 'desc'], default: 'desc' } },
          { name: 'after', in: 'query', schema: { type: 'string' } },
        ],
        responses: {
          200: { description: 'A page of input items.', content: { 'application/json': { schema: ref('ResponseItemList') } } },
          400: errorResponse('Invalid query (e.g. an `after` that is not an item of this response)'),
          404: notFound,
          503: errorResponse('The response store (Redis) is unavailable'),
        },
      },
    });
    this.routes.register({
      method: 'DELETE',
      url: '/v1/responses/:id',
      schema: { params: responseIdParamsSchema, response: { 200: deletedResponseSchema } },
      handler: async (request: FastifyRequest) => {
        const { id } = request.params as { id: string };
        if (this.store === null || !(await this.store.delete(id, this.owner(request)))) throw responseNotFound(id);
        return { id, object: 'response', deleted: true };
      },
      openapi: {
        tags: ['OpenAI'],
        operationId: 'deleteResponse',
        summary: 'Delete a stored response',
        description: 'Responses that continue it keep their own copy of the conversation.',
        parameters: [idParam],
        responses: {
          200: { description: 'Deleted.', content: { 'application/json': { schema: ref('DeletedResponse') } } },
          404: notFound,
          503: errorResponse('The response store (Redis) is unavailable'),
        },
      },
    });
  }

  private async respond(body: ResponsesBody, reply: FastifyReply): Promise<unknown> {
    const previousId = body.previous_response_id ?? null;
    const owner = this.owner(reply.request);
    const context = previousId === null ? [] : continuation(await this.previous(previousId, owner));
    const { chat, sources } = responsesChatBody(body, context);
    let job: InferenceJob;
    try {
      job = this.inference.chatJob(chat);
    } catch (error) {
      throw responsesError(error, sources);
    }
    const store = this.store !== null && body.store !== false;
    const head: ResponseHead = {
      id: responseId(),
      createdAt: Math.floor(Date.now() / 1000),
      model: job.model,
      echo: responseEcho(body),
      store,
      previousResponseId: previousId,
    };
    const target: StoreTarget | undefined = store ? { input: body.input, context, owner } : undefined;
    try {
      if (body.stream === true) {
        await this.stream(job, head, sources, target, reply);
        return reply;
      }
      return await this.save(responseBody(head, await this.responder.generate(job, reply)), target);
    } catch (error) {
      throw responsesError(error, sources);
    }
  }

  /**
   * Stores a finished response (when it is to be stored) and returns what to answer: the response
   * itself, or, when the store could not take it, the same with `store: false` (it cannot be
   * retrieved or continued, and the client is told so rather than finding out later).
   */
  private async save(response: ResponseObject, target: StoreTarget | undefined): Promise<ResponseObject> {
    if (target === undefined || this.store === null) return response;
    const record: StoredResponse = {
      v: 1,
      response: response as unknown as StoredResponse['response'],
      input: storedInput(target.input),
      context: target.context,
      owner: target.owner,
    };
    return (await this.store.save(record)) ? response : { ...response, store: false };
  }

  /** The stored response `previous_response_id` names (400 when it is unknown, or when nothing is stored). */
  private async previous(id: string, owner: string | null): Promise<StoredResponse> {
    if (this.store === null) {
      throw ApiError.invalidRequest(
        "'previous_response_id' is not supported: this server does not store responses (RESPONSES_STORE_ENABLED=false). Send the whole conversation in 'input'.",
        'previous_response_id',
        'unsupported_parameter',
      );
    }
    const record = await this.store.get(id, owner);
    if (record === undefined) throw ApiError.invalidRequest(`Previous response with id '${id}' not found.`, 'previous_response_id', 'previous_response_not_found');
    return record;
  }

  /** The stored response `id` for this request's API key, or a 404. */
  private async stored(id: string, request: FastifyRequest): Promise<StoredResponse> {
    const record = this.store === null ? undefined : await this.store.get(id, this.owner(request));
    if (record === undefined) throw responseNotFound(id);
    return record;
  }

  /**
   * Who owns what this request stores or reads, with API keys (the key hook has checked the key): a
   * named key (API_KEYS_FILE) by its name, so its responses stay its own when the key is rotated; a
   * key of API_KEYS by its digest.
   */
  private owner(request: FastifyRequest): string | null {
    const key = request.apiKey;
    if (!key) return null;
    return key.name === undefined ? key.digest : `name:${key.name}`;
  }

  /**
   * Writes the job's stream as Responses events. As the chat streams (writeSse): the headers go out
   * with the first part (an error before it is an ordinary HTTP error), writes honour backpressure,
   * a client that leaves stops the generation. An error after the headers is an `error` event then
   * `response.failed`, and the stream ends. A finished response is stored before its last event.
   */
  private async stream(job: InferenceJob, head: ResponseHead, sources: readonly number[], target: StoreTarget | undefined, reply: FastifyReply): Promise<void> {
    const served = await this.responder.openStream(job, reply);
    const iterator = served.parts[Symbol.asyncIterator]();
    let next: IteratorResult<StreamPart> = await iterator.next();

    const headers = typeof served.headers === 'function' ? served.headers() : served.headers;
    openSse(reply, headers);
    const res = reply.raw;
    const events = new ResponseStreamEvents(head);
    try {
      if (!(await sendFrames(res, events.start()))) return;
      let finished = false;
      while (!next.done) {
        const part = next.value;
        let frames = '';
        if (part.type !== 'finish') {
          frames = events.part(part);
        } else if (!finished) {
          finished = true;
          this.usage?.record(job.model, part.usage, headers?.['x-cache'] === 'HIT', reply.request.apiKey?.name);
          const end = events.finish(part.finishReason, part.usage);
          frames = end.frames + events.last(await this.save(end.response, target));
        }
        if (frames.length > 0 && !(await sendFrames(res, frames))) return;
        next = await iterator.next();
      }
      if (!res.destroyed) res.end();
    } catch (error) {
      if (res.destroyed || res.writableEnded) return;
      const { status, body, unexpected } = mapError(responsesError(error, sources), reply.request.id);
      if (unexpected) reply.request.log.error({ err: error }, 'stream failed');
      else reply.request.log.warn({ code: body.error.code, detail: error instanceof Error ? error.message : String(error) }, 'stream failed');
      res.end(events.failed(status, body));
    } finally {
      await iterator.return?.();
    }
  }
}

function responseNotFound(id: string): ApiError {
  return new ApiError(404, `Response with id '${id}' not found.`, 'invalid_request_error');
}

/** A page of items in OpenAI's list shape (`after`: the id of the item the page starts after, in `order`). */
function itemList(items: readonly StoredItem[], query: { limit: number; order: 'asc' | 'desc'; after?: string }) {
  const ordered = query.order === 'asc' ? items : [...items].reverse();
  let start = 0;
  if (query.after !== undefined) {
    const at = ordered.findIndex((item) => item.id === query.after);
    if (at < 0) throw ApiError.invalidRequest(`No input item with id '${query.after}' in this response.`, 'after');
    start = at + 1;
  }
  const data = ordered.slice(start, start + query.limit);
  return {
    object: 'list' as const,
    data,
    first_id: data[0]?.id ?? null,
    last_id: data[data.length - 1]?.id ?? null,
    has_more: start + data.length < ordered.length,
  };
}
