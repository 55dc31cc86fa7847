import { type BeforeApplicationShutdown, Inject, Injectable, Logger, type OnModuleInit, Optional } from '@nestjs/common';
import type { StreamPart } from '@infer/model-providers';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { errorResponse, inferenceErrorResponses } from '../common/api-docs.js';
import { ApiError, errorBody } from '../common/api-error.js';
import { mapError } from '../common/error-mapping.js';
import { HotRoutes } from '../common/hot-routes.js';
import { USAGE_RECORDER, type UsageRecorder } from '../metrics/usage-recorder.js';
import { BackgroundResponses, stopReasonOf } from './background-responses.js';
import { CompletionResponder } from './completion-responder.js';
import { type InferenceJob, InferenceService } from './inference.service.js';
import { ref } from './openai.schemas.js';
import { ownerOf, RESPONSE_STORE, type ResponseStore, type StoredConversation, type StoredItem, type StoredResponse } from './response-store.js';
import {
  continuation,
  failedResponseBody,
  itemList,
  listLimit,
  pendingResponseBody,
  type ResponseHead,
  type ResponseObject,
  ResponseStreamEvents,
  responseBody,
  responseEcho,
  responseId,
  storedInput,
  StoredResponseEvents,
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

/** How often a background response looks whether another process cancelled it (a shared store). */
const CANCEL_POLL_MS = 1_000;

/** The error of a background response whose process stopped without finishing it (see ResponsesRoutes.alive). */
const PROCESS_LOST = 'The server process running this response stopped before it recorded the end (it stopped, or could not reach the response store).';

/** How often a stream following a background response (that does not run in this process) reads its record. */
const REPLAY_POLL_MS = 500;
/** A comment line on such a stream after this long without an event (NGINX cuts silent upstreams after proxy_read_timeout). */
const REPLAY_KEEPALIVE_MS = 10_000;

/** Waits before the retries of a background response's final write (the store failed). */
const FINAL_WRITE_RETRIES = [250, 1_000, 4_000];

/** A stored response that has not ended yet (a background one, queued or running). */
function isRunning(record: StoredResponse): boolean {
  const status = record.response['status'];
  return status === 'queued' || status === 'in_progress';
}

/** What a response to be stored needs besides its Response object. */
interface StoreTarget {
  /** The request's input items, with their ids (computed once: every save of a background response lists the same ids). */
  readonly items: readonly StoredItem[];
  readonly context: readonly StoredItem[];
  readonly owner: string | null;
}

/** What a background response's run needs of the request that created it (copied: that request is answered at once). */
interface BackgroundRun {
  readonly job: InferenceJob;
  readonly head: ResponseHead;
  readonly fail: (error: unknown) => unknown;
  readonly target: StoreTarget;
  readonly conv: ConversationTarget | undefined;
  readonly headers: FastifyRequest['headers'];
  /** The API key's name (usage metrics). */
  readonly key: string | undefined;
}

/** The conversation a response belongs to (`conversation`): its input and output are added to it once it finished. */
interface ConversationTarget {
  readonly id: string;
  readonly owner: string | null;
  readonly items: readonly StoredItem[];
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
export class ResponsesRoutes implements OnModuleInit, BeforeApplicationShutdown {
  private readonly logger = new Logger('Responses');

  constructor(
    private readonly routes: HotRoutes,
    private readonly inference: InferenceService,
    private readonly responder: CompletionResponder,
    /** null: RESPONSES_STORE_ENABLED=false. */
    @Inject(RESPONSE_STORE) private readonly store: ResponseStore | null,
    /** Background responses running in this process (the graceful shutdown waits for them, see BACKGROUND_WORK). */
    private readonly background: BackgroundResponses,
    /** Set with METRICS_PORT: told the token usage of every answer (JSON answers: by the responder). */
    @Optional() @Inject(USAGE_RECORDER) private readonly usage: UsageRecorder | null = null,
  ) {}

  onModuleInit(): void {
    new Logger('ResponseStore').log(this.store?.description ?? 'responses are not stored (RESPONSES_STORE_ENABLED=false)');
    this.registerCreate();
    this.registerStored();
    this.registerCancel();
  }

  /** Background responses still running are stopped and recorded as failed before the store closes. */
  async beforeApplicationShutdown(): Promise<void> {
    if (this.background.size > 0) this.logger.warn(`stopping ${this.background.size} background response(s)`);
    await this.background.shutdown();
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
          '`background: true` answers at once with `status: "queued"` and runs the response afterwards: poll ' +
          '`GET /v1/responses/{id}` (`in_progress`, then `completed`, `incomplete`, `failed` or `cancelled`), stop it with ' +
          '`POST /v1/responses/{id}/cancel` (needs `store`; with `stream`, its events as GET ?stream=true gives them). ' +
          '`conversation` (POST /v1/conversations) puts its items before `input` and gets the input and output added. ' +
          'Refused (400 `unsupported_parameter`): built-in tools, ' +
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
      handler: async (request: FastifyRequest, reply: FastifyReply) => {
        const { id } = request.params as { id: string };
        const query = request.query as { stream?: string; starting_after?: string };
        const record = await this.stored(id, request);
        if (query.stream !== 'true') return record.response;
        await this.replay(record, query.starting_after === undefined ? -1 : Number(query.starting_after), reply);
        return reply;
      },
      openapi: {
        tags: ['OpenAI'],
        operationId: 'getResponse',
        summary: 'Retrieve a stored response',
        description:
          'The `Response` object as it was answered (`store: true`). With `stream=true`: its events again (SSE, as a streamed ' +
          "response, each item's text in one delta; a background response still running is followed until it ends), from " +
          '`starting_after` (the last `sequence_number` seen) on.',
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
        const limit = listLimit(query.limit);
        const record = await this.stored(id, request);
        return itemList([...record.context, ...record.input], { limit, order: query.order, after: query.after }, 'response');
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
        // A background response running here stops (nobody can read its end any more).
        this.background.cancel(id);
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
    const conversationId = conversationIdOf(body.conversation);
    const conversation = conversationId === undefined ? undefined : await this.conversationOf(conversationId, owner, previousId);
    const context = conversation !== undefined ? conversation.items : previousId === null ? [] : continuation(await this.previous(previousId, owner));
    const { chat, sources } = responsesChatBody(body, context);
    // A check failing on a stored message names where it came from.
    const fail = (error: unknown) => (conversation === undefined ? responsesError(error, sources) : renameParam(responsesError(error, sources), 'previous_response_id', 'conversation'));
    let job: InferenceJob;
    try {
      job = this.inference.chatJob(chat);
    } catch (error) {
      throw fail(error);
    }
    const store = this.store !== null && body.store !== false;
    const head: ResponseHead = {
      id: responseId(),
      createdAt: Math.floor(Date.now() / 1000),
      model: job.model,
      echo: responseEcho(body),
      store,
      previousResponseId: previousId,
      ...(conversationId === undefined ? {} : { conversation: conversationId }),
    };
    // The input items with their ids: only for what keeps them (the store, a conversation).
    const items = store || conversationId !== undefined ? storedInput(body.input) : [];
    const target: StoreTarget | undefined = store ? { items, context, owner } : undefined;
    const conv: ConversationTarget | undefined = conversationId === undefined ? undefined : { id: conversationId, owner, items };
    if (body.background === true) {
      if (this.store === null) {
        throw ApiError.invalidRequest(
          'Background responses are not supported: this server does not store responses (RESPONSES_STORE_ENABLED=false).',
          'background',
          'unsupported_parameter',
        );
      }
      if (target === undefined) throw ApiError.invalidRequest('Background mode requires `store` to be true.', 'store');
      const queued = await this.startBackground(job, { ...head, background: true }, fail, target, conv, reply);
      if (body.stream !== true) return queued;
      // Streamed: its events as GET ?stream=true gives them (the client may leave and resume there; the run goes on).
      await this.replay(this.record(queued, target), -1, reply);
      return reply;
    }
    try {
      if (body.stream === true) {
        await this.stream(job, head, sources, target, conv, reply);
        return reply;
      }
      return await this.finish(responseBody(head, await this.responder.generate(job, reply)), target, conv);
    } catch (error) {
      throw fail(error);
    }
  }

  /**
   * `background: true`: the response is stored as `queued` and answered at once; it runs afterwards
   * (runBackground), detached from this request. 503 when the store cannot keep it (nobody could
   * ever read the result).
   */
  private async startBackground(
    job: InferenceJob,
    head: ResponseHead,
    fail: (error: unknown) => unknown,
    target: StoreTarget,
    conv: ConversationTarget | undefined,
    reply: FastifyReply,
  ): Promise<ResponseObject> {
    const store = this.store as ResponseStore;
    const queued = pendingResponseBody(head, 'queued');
    // The lease first: no process may see the record without it and take the response for dead.
    if (!(await store.holdLease(head.id)) || !(await store.save(this.record(queued, target)))) {
      throw new ApiError(503, 'The response store could not keep a background response: try again, or leave out `background`.', 'server_error', 'store_unavailable');
    }
    // What the run needs of the request, copied: the request object is gone by then.
    const headers = { ...reply.request.headers };
    const key = reply.request.apiKey?.name;
    this.background.start(head.id, (signal) =>
      this.runBackground({ job, head, fail, target, conv, headers, key }, signal).catch((error: unknown) =>
        this.logger.error({ msg: 'background response failed unexpectedly', response: head.id, err: error instanceof Error ? error.stack : String(error) }),
      ),
    );
    return queued;
  }

  /**
   * Runs a background response: `in_progress`, then its end as GET will return it (`completed`,
   * `incomplete`, or `failed` with the error a client would have been answered). Cancelled (here, or
   * in another process when the store is shared: looked up every CANCEL_POLL_MS), it stops and
   * leaves the `cancelled` record the cancel route wrote; stopped by a shutdown, it records
   * `failed`. A record cancelled or deleted meanwhile is never overwritten by the end.
   */
  private async runBackground(run: BackgroundRun, signal: AbortSignal): Promise<void> {
    const { head, target } = run;
    const store = this.store as ResponseStore;
    const id = head.id;
    const owner = target.owner;
    // Only a response still queued becomes in_progress (not one cancelled meanwhile).
    await store
      .updateResponse(id, owner, (record) => (record.response['status'] === 'queued' ? this.record(pendingResponseBody(head, 'in_progress'), target) : undefined))
      .catch((error: unknown) => this.logger.warn({ msg: 'could not mark a background response in_progress', response: id, detail: String(error) }));
    const watch = store.shared
      ? setInterval(() => {
          void this.goneElsewhere(id, target.owner).then((gone) => {
            if (gone) this.background.cancel(id);
          });
        }, CANCEL_POLL_MS)
      : undefined;
    const renew = store.shared ? setInterval(() => void store.holdLease(id), store.leaseMs / 3) : undefined;
    try {
      await this.runToEnd(run, signal);
    } finally {
      clearInterval(watch);
      clearInterval(renew);
      await store.releaseLease(id).catch(() => undefined);
    }
  }

  /** runBackground's generation and final write (the lease is held meanwhile). */
  private async runToEnd({ job, head, fail, target, conv, headers, key }: BackgroundRun, signal: AbortSignal): Promise<void> {
    const store = this.store as ResponseStore;
    const { id } = head;
    const { owner } = target;
    let end: ResponseObject;
    try {
      const { result, fromCache } = await this.responder.generateDetached(job, headers, signal);
      this.usage?.record(job.model, result.usage, fromCache, key);
      end = responseBody(head, result);
    } catch (error) {
      if (signal.aborted && stopReasonOf(signal) === 'cancelled') return;
      if (signal.aborted) {
        end = failedResponseBody(head, 500, errorBody(500, 'The server shut down before this response finished.', 'server_error', 'server_shutdown'));
      } else {
        const { status, body, unexpected } = mapError(fail(error));
        const detail = error instanceof Error ? error.message : String(error);
        if (unexpected) this.logger.error({ msg: 'background response failed', response: id, err: error instanceof Error ? error.stack : detail });
        else this.logger.warn({ msg: 'background response failed', response: id, code: body.error.code, detail });
        end = failedResponseBody(head, status, body);
      }
    }
    // The end is written only over a response still running: never over a cancel or a delete that
    // came meanwhile (serialised with them in this process). A store that fails is tried again.
    for (let attempt = 0; ; attempt++) {
      try {
        const { after } = await store.updateResponse(id, owner, (record) => (isRunning(record) ? this.record(end, target) : undefined));
        if (after !== undefined) await this.addToConversation(end, conv);
        return;
      } catch (error) {
        if (attempt >= FINAL_WRITE_RETRIES.length) {
          // Its lease is released next: readers then record it as failed (PROCESS_LOST).
          this.logger.error({ msg: 'the end of a background response could not be stored: it will read as failed', response: id, detail: String(error) });
          return;
        }
        await new Promise((resolve) => setTimeout(resolve, FINAL_WRITE_RETRIES[attempt]));
      }
    }
  }

  /**
   * Streams a stored response's events (StoredResponseEvents) from `startingAfter` on. A background
   * response still queued or running is followed: its record is read again when its run in this
   * process ends, else every REPLAY_POLL_MS (a comment line every REPLAY_KEEPALIVE_MS keeps proxies
   * from timing the stream out), and its output follows once it ended. The client leaving stops the
   * stream, never the response.
   */
  private async replay(record: StoredResponse, startingAfter: number, reply: FastifyReply): Promise<void> {
    const store = this.store as ResponseStore;
    const id = record.response.id;
    const events = new StoredResponseEvents(startingAfter);
    openSse(reply, undefined);
    const res = reply.raw;
    let current: StoredResponse | undefined = record;
    if (!(await sendFrames(res, events.start(current.response)))) return;
    let quietSince = Date.now();
    while (isRunning(current)) {
      const here = this.background.settled(id);
      await new Promise<void>((resolve) => {
        const done = () => {
          clearTimeout(timer);
          res.off('close', done);
          resolve();
        };
        const timer = setTimeout(done, REPLAY_POLL_MS);
        res.once('close', done);
        void here?.then(done);
      });
      if (res.destroyed) return;
      try {
        const read: StoredResponse | undefined = await store.get(id, record.owner);
        current = read === undefined ? undefined : await this.alive(read);
      } catch (error) {
        // The store is unreachable for now: keep following.
        reply.request.log.warn({ response: id, detail: error instanceof Error ? error.message : String(error) }, 'following a background response: the store did not answer');
      }
      if (current === undefined) {
        res.end(`event: error\ndata: ${JSON.stringify({ type: 'error', code: 'not_found', message: `Response with id '${id}' was deleted.`, param: null })}\n\n`);
        return;
      }
      let frames = events.progress(current.response);
      if (frames === '' && Date.now() - quietSince >= REPLAY_KEEPALIVE_MS) frames = ': keep-alive\n\n';
      if (frames !== '') {
        quietSince = Date.now();
        if (!(await sendFrames(res, frames))) return;
      }
    }
    if (!(await sendFrames(res, events.end(current.response)))) return;
    res.end();
  }

  /**
   * True when `id` was cancelled, deleted, or recorded as failed because its lease lapsed (false
   * when the store cannot tell: better to write the end).
   */
  private async goneElsewhere(id: string, owner: string | null): Promise<boolean> {
    try {
      const record = await (this.store as ResponseStore).get(id, owner);
      return record === undefined || !isRunning(record);
    } catch {
      return false;
    }
  }

  /** POST /v1/responses/{id}/cancel. */
  private registerCancel(): void {
    this.routes.register({
      method: 'POST',
      url: '/v1/responses/:id/cancel',
      schema: { params: responseIdParamsSchema },
      handler: async (request: FastifyRequest) => {
        const { id } = request.params as { id: string };
        if (this.store === null) throw responseNotFound(id);
        // Serialised with the run's own status writes (see runBackground).
        const { before, after } = await this.store.updateResponse(id, this.owner(request), (record) =>
          record.response['background'] === true && isRunning(record) ? { ...record, response: { ...record.response, status: 'cancelled' } } : undefined,
        );
        if (before === undefined) throw responseNotFound(id);
        if (before.response['background'] !== true) {
          throw ApiError.invalidRequest('Cannot cancel a synchronous response: only background responses can be cancelled.', 'response_id');
        }
        if (after !== undefined) {
          // Running here: stopped now; in another process: it sees the record within CANCEL_POLL_MS.
          this.background.cancel(id);
          return after.response;
        }
        const status = before.response['status'];
        if (status === 'cancelled') return before.response;
        throw ApiError.invalidRequest(`Cannot cancel a response that has already finished (status '${String(status)}').`, 'response_id');
      },
      openapi: {
        tags: ['OpenAI'],
        operationId: 'cancelResponse',
        summary: 'Cancel a background response',
        description:
          'Stops a response created with `background: true` that is `queued` or `in_progress` and answers it with `status: "cancelled"` ' +
          '(again for one already cancelled). A synchronous or finished response is a 400.',
        parameters: [{ name: 'id', in: 'path', required: true, schema: { type: 'string' }, example: 'resp_3f1c0a5e8b2d4c7f9a6e1b0d' }],
        responses: {
          200: { description: 'The cancelled response.', content: { 'application/json': { schema: ref('Response') } } },
          400: errorResponse('Not a background response, or already finished'),
          404: errorResponse('No stored response with this id (or not for this API key)'),
          503: errorResponse('The response store (Redis) is unavailable'),
        },
      },
    });
  }

  private record(response: ResponseObject, target: StoreTarget): StoredResponse {
    return {
      v: 1,
      response: response as unknown as StoredResponse['response'],
      input: target.items,
      context: target.context,
      owner: target.owner,
      ...(response.background === true && this.store?.shared === true ? { leased: true as const } : {}),
    };
  }

  /**
   * A leased background response whose process stopped renewing the lease (it died without shutting
   * down: SIGKILL, out of memory, a lost host) is recorded as failed by whoever reads it first; any
   * other record as it is. Undefined when it was deleted meanwhile.
   */
  private async alive(record: StoredResponse): Promise<StoredResponse | undefined> {
    const store = this.store;
    if (store === null || record.leased !== true || !isRunning(record)) return record;
    const id = record.response.id;
    if (await store.leaseHeld(id)) return record;
    const { before, after } = await store.updateResponse(id, record.owner, (current) =>
      isRunning(current) ? { ...current, response: { ...current.response, status: 'failed', error: { code: 'server_error', message: PROCESS_LOST } } } : undefined,
    );
    if (after !== undefined) this.logger.warn({ msg: 'recorded a background response as failed: the process running it stopped without finishing it', response: id });
    return after ?? before;
  }

  /** A finished response: stored (see save), and added to its conversation. Returns what to answer. */
  private async finish(response: ResponseObject, target: StoreTarget | undefined, conv: ConversationTarget | undefined): Promise<ResponseObject> {
    const answer = await this.save(response, target);
    await this.addToConversation(response, conv);
    return answer;
  }

  /**
   * Adds a finished response's input and output items to its conversation (completed or incomplete
   * ones: a failed response adds nothing). A store that cannot take them is logged: the response
   * is answered anyway.
   */
  private async addToConversation(response: ResponseObject, conv: ConversationTarget | undefined): Promise<void> {
    if (conv === undefined || this.store === null || (response.status !== 'completed' && response.status !== 'incomplete')) return;
    const added = [...conv.items, ...(response.output as unknown as StoredItem[])];
    try {
      const updated = await this.store.updateConversation(conv.id, conv.owner, (record) => ({ ...record, items: [...record.items, ...added] }));
      if (updated === undefined) this.logger.warn({ msg: 'the conversation of a response was deleted meanwhile', conversation: conv.id, response: response.id });
    } catch (error) {
      this.logger.warn({ msg: 'adding a response to its conversation failed', conversation: conv.id, response: response.id, detail: error instanceof Error ? error.message : String(error) });
    }
  }

  /** The conversation `conversation` names: 400 when unknown (or another key's), or when nothing is stored. */
  private async conversationOf(id: string, owner: string | null, previousId: string | null): Promise<StoredConversation> {
    if (previousId !== null) {
      throw ApiError.invalidRequest("'previous_response_id' and 'conversation' cannot be used together: a response continues one or the other.", 'conversation');
    }
    if (this.store === null) {
      throw ApiError.invalidRequest("'conversation' is not supported: this server does not store responses (RESPONSES_STORE_ENABLED=false).", 'conversation', 'unsupported_parameter');
    }
    const record = await this.store.getConversation(id, owner);
    if (record === undefined) throw ApiError.invalidRequest(`Conversation with id '${id}' not found.`, 'conversation', 'conversation_not_found');
    return record;
  }

  /**
   * Stores a finished response (when it is to be stored) and returns what to answer: the response
   * itself, or, when the store could not take it, the same with `store: false` (it cannot be
   * retrieved or continued, and the client is told so rather than finding out later).
   */
  private async save(response: ResponseObject, target: StoreTarget | undefined): Promise<ResponseObject> {
    if (target === undefined || this.store === null) return response;
    return (await this.store.save(this.record(response, target))) ? response : { ...response, store: false };
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
    const stored = await this.store.get(id, owner);
    const record = stored === undefined ? undefined : await this.alive(stored);
    if (record === undefined) throw ApiError.invalidRequest(`Previous response with id '${id}' not found.`, 'previous_response_id', 'previous_response_not_found');
    const status = record.response['status'];
    if (status !== 'completed' && status !== 'incomplete') {
      // A background response still running (or one that failed or was cancelled) has no output to continue.
      throw ApiError.invalidRequest(`Previous response with id '${id}' cannot be continued: its status is '${String(status)}'.`, 'previous_response_id');
    }
    return record;
  }

  /** The stored response `id` for this request's API key, or a 404. */
  private async stored(id: string, request: FastifyRequest): Promise<StoredResponse> {
    const stored = this.store === null ? undefined : await this.store.get(id, this.owner(request));
    const record = stored === undefined ? undefined : await this.alive(stored);
    if (record === undefined) throw responseNotFound(id);
    return record;
  }

  /** Who owns what this request stores or reads (see ownerOf). */
  private owner(request: FastifyRequest): string | null {
    return ownerOf(request.apiKey);
  }

  /**
   * Writes the job's stream as Responses events. As the chat streams (writeSse): the headers go out
   * with the first part (an error before it is an ordinary HTTP error), writes honour backpressure,
   * a client that leaves stops the generation. An error after the headers is an `error` event then
   * `response.failed`, and the stream ends. A finished response is stored before its last event.
   */
  private async stream(
    job: InferenceJob,
    head: ResponseHead,
    sources: readonly number[],
    target: StoreTarget | undefined,
    conv: ConversationTarget | undefined,
    reply: FastifyReply,
  ): Promise<void> {
    const served = await this.responder.openStream(job, reply);
    const iterator = served.parts[Symbol.asyncIterator]();
    let next: IteratorResult<StreamPart> = await iterator.next();
    const firstPartMs = reply.elapsedTime;
    const metrics = this.responder.streamMetrics(job, reply);

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
          metrics?.(part.usage, headers, { firstPartMs, finishMs: reply.elapsedTime });
          const end = events.finish(part.finishReason, part.usage);
          frames = end.frames + events.last(await this.finish(end.response, target, conv));
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

/** `conversation` as given: an id, or `{"id": …}`. */
function conversationIdOf(value: ResponsesBody['conversation']): string | undefined {
  if (value === undefined || value === null) return undefined;
  return typeof value === 'string' ? value : value.id;
}

/** The same error with another `param` (an ApiError rebuilt; anything else as it is). */
function renameParam(error: unknown, from: string, to: string): unknown {
  if (!(error instanceof ApiError) || error.param !== from) return error;
  return new ApiError(error.status, error.message, error.type, error.code, to);
}
