import { Inject, Injectable, type OnModuleInit } from '@nestjs/common';
import type { FastifyRequest } from 'fastify';
import { errorResponse } from '../common/api-docs.js';
import { ApiError } from '../common/api-error.js';
import { HotRoutes } from '../common/hot-routes.js';
import { ref } from './openai.schemas.js';
import { ownerOf, RESPONSE_STORE, type ResponseStore, type StoredConversation, type StoredItem } from './response-store.js';
import { conversationId, itemList, listLimit, storedInput } from './responses-format.js';
import { responsesChatBody } from './responses-request.js';
import { inputItemListQuerySchema, inputItemListSchema, type ResponsesBody, type ResponsesInputItem, responsesInputItemSchema } from './responses.schemas.js';

/** Most items one request may add (OpenAI's limit). */
const MAX_ITEMS_PER_REQUEST = 20;

const metadataSchema = {
  type: 'object',
  maxProperties: 16,
  additionalProperties: { type: 'string', maxLength: 512 },
  nullable: true,
  description: 'Up to 16 string pairs (keys up to 64 characters, values up to 512); null: none.',
} as const;

const idParams = { type: 'object', required: ['id'], properties: { id: { type: 'string', minLength: 1, maxLength: 256 } } } as const;
const itemParams = {
  type: 'object',
  required: ['id', 'item_id'],
  properties: { id: { type: 'string', minLength: 1, maxLength: 256 }, item_id: { type: 'string', minLength: 1, maxLength: 256 } },
} as const;
const items = { type: 'array', maxItems: MAX_ITEMS_PER_REQUEST, items: responsesInputItemSchema } as const;

const createBody = { type: 'object', additionalProperties: false, properties: { items: { ...items, nullable: true }, metadata: metadataSchema } } as const;
const updateBody = { type: 'object', additionalProperties: false, required: ['metadata'], properties: { metadata: metadataSchema } } as const;
// (The OpenAPI operations take these as they are: `as never` only drops their readonly types.)
const addItemsBody = { type: 'object', additionalProperties: false, required: ['items'], properties: { items: { ...items, minItems: 1 } } } as const;


/**
 * OpenAI's Conversations API: a conversation is a stored list of items (messages, function calls and
 * their outputs) that responses build on. POST /v1/responses with `conversation` puts its items
 * before the input and, once the response finished, adds the input and the output to it. Kept in
 * the response store (in this process, or on Redis for every process; RESPONSES_STORE_TTL_SECONDS),
 * scoped to the API key like stored responses.
 */
@Injectable()
export class ConversationsRoutes implements OnModuleInit {
  constructor(
    private readonly routes: HotRoutes,
    /** null: RESPONSES_STORE_ENABLED=false. */
    @Inject(RESPONSE_STORE) private readonly store: ResponseStore | null,
  ) {}

  onModuleInit(): void {
    const tags = ['OpenAI'];
    const notFound = errorResponse('No conversation with this id (or not for this API key)');
    const unavailable = errorResponse('The store (Redis) is unavailable');
    const idParam = { name: 'id', in: 'path' as const, required: true, schema: { type: 'string' as const }, example: 'conv_3f1c0a5e8b2d4c7f9a6e1b0d' };
    const conversationOk = { description: 'The conversation.', content: { 'application/json': { schema: ref('Conversation') } } };

    this.routes.register({
      method: 'POST',
      url: '/v1/conversations',
      schema: { body: createBody },
      handler: async (request) => {
        const body = request.body as { items?: ResponsesInputItem[] | null; metadata?: Record<string, string> | null };
        checkMetadata(body.metadata);
        const store = this.storeOrRefuse();
        const record: StoredConversation = {
          v: 1,
          conversation: { id: conversationId(), object: 'conversation', created_at: Math.floor(Date.now() / 1000), metadata: body.metadata ?? {} },
          items: checkedItems(body.items ?? []),
          owner: ownerOf(request.apiKey),
        };
        if (!(await store.saveConversation(record))) throw storeFailed();
        return record.conversation;
      },
      openapi: {
        tags,
        operationId: 'createConversation',
        summary: 'Create a conversation',
        description: `Optionally with up to ${MAX_ITEMS_PER_REQUEST} items (input items as in POST /v1/responses) and metadata. Use its id as \`conversation\` on POST /v1/responses.`,
        requestBody: { required: false, content: { 'application/json': { schema: createBody as never } } },
        responses: { 200: conversationOk, 400: errorResponse('Invalid items or metadata, or responses are not stored here'), 503: unavailable },
      },
    });

    this.routes.register({
      method: 'GET',
      url: '/v1/conversations/:id',
      schema: { params: idParams },
      handler: async (request) => (await this.conversation(request)).conversation,
      openapi: { tags, operationId: 'getConversation', summary: 'Retrieve a conversation', parameters: [idParam], responses: { 200: conversationOk, 404: notFound, 503: unavailable } },
    });

    this.routes.register({
      method: 'POST',
      url: '/v1/conversations/:id',
      schema: { params: idParams, body: updateBody },
      handler: async (request) => {
        // null clears it (the SDK's ConversationUpdateParams allows it).
        const metadata = (request.body as { metadata: Record<string, string> | null }).metadata ?? {};
        checkMetadata(metadata);
        const updated = await this.update(request, (record) => ({ ...record, conversation: { ...record.conversation, metadata } }));
        return updated.conversation;
      },
      openapi: {
        tags,
        operationId: 'updateConversation',
        summary: "Replace a conversation's metadata",
        parameters: [idParam],
        requestBody: { required: true, content: { 'application/json': { schema: updateBody as never } } },
        responses: { 200: conversationOk, 404: notFound, 503: unavailable },
      },
    });

    this.routes.register({
      method: 'DELETE',
      url: '/v1/conversations/:id',
      schema: { params: idParams },
      handler: async (request) => {
        const { id } = request.params as { id: string };
        if (this.store === null || !(await this.store.deleteConversation(id, ownerOf(request.apiKey)))) throw conversationNotFound(id);
        return { id, object: 'conversation.deleted', deleted: true };
      },
      openapi: {
        tags,
        operationId: 'deleteConversation',
        summary: 'Delete a conversation',
        description: 'Its items go with it; the responses made in it stay stored.',
        parameters: [idParam],
        responses: { 200: { description: 'Deleted.' }, 404: notFound, 503: unavailable },
      },
    });

    this.routes.register({
      method: 'GET',
      url: '/v1/conversations/:id/items',
      schema: { params: idParams, querystring: inputItemListQuerySchema, response: { 200: inputItemListSchema } },
      handler: async (request) => {
        const query = request.query as { limit: string; order: 'asc' | 'desc'; after?: string };
        const limit = listLimit(query.limit);
        const record = await this.conversation(request);
        return itemList(record.items, { limit, order: query.order, after: query.after }, 'conversation');
      },
      openapi: {
        tags,
        operationId: 'listConversationItems',
        summary: 'List the items of a conversation',
        description: 'Newest first unless `order=asc`; pages of `limit` (1–100, default 20) after the item id `after`.',
        parameters: [
          idParam,
          { name: 'limit', in: 'query', schema: { type: 'integer', minimum: 1, maximum: 100, default: 20 } },
          { name: 'order', in: 'query', schema: { type: 'string', enum: ['asc', 'desc'], default: 'desc' } },
          { name: 'after', in: 'query', schema: { type: 'string' } },
        ],
        responses: { 200: { description: 'A page of items.', content: { 'application/json': { schema: ref('ResponseItemList') } } }, 404: notFound, 503: unavailable },
      },
    });

    this.routes.register({
      method: 'POST',
      url: '/v1/conversations/:id/items',
      schema: { params: idParams, body: addItemsBody },
      handler: async (request) => {
        const added = checkedItems((request.body as { items: ResponsesInputItem[] }).items);
        await this.update(request, (record) => ({ ...record, items: [...record.items, ...added] }));
        return { object: 'list', data: added, first_id: added[0]?.id ?? null, last_id: added[added.length - 1]?.id ?? null, has_more: false };
      },
      openapi: {
        tags,
        operationId: 'createConversationItems',
        summary: 'Add items to a conversation',
        description: `Up to ${MAX_ITEMS_PER_REQUEST} input items, appended in order; answers them with their ids.`,
        parameters: [idParam],
        requestBody: { required: true, content: { 'application/json': { schema: addItemsBody as never } } },
        responses: { 200: { description: 'The added items.', content: { 'application/json': { schema: ref('ResponseItemList') } } }, 404: notFound, 503: unavailable },
      },
    });

    this.routes.register({
      method: 'GET',
      url: '/v1/conversations/:id/items/:item_id',
      schema: { params: itemParams },
      handler: async (request) => {
        const { item_id: itemId } = request.params as { item_id: string };
        const item = (await this.conversation(request)).items.find((candidate) => candidate.id === itemId);
        if (item === undefined) throw new ApiError(404, `No item with id '${itemId}' in this conversation.`, 'invalid_request_error', 'not_found', 'item_id');
        return item;
      },
      openapi: {
        tags,
        operationId: 'getConversationItem',
        summary: 'Retrieve an item of a conversation',
        parameters: [idParam, { name: 'item_id', in: 'path', required: true, schema: { type: 'string' } }],
        responses: { 200: { description: 'The item.' }, 404: notFound, 503: unavailable },
      },
    });

    this.routes.register({
      method: 'DELETE',
      url: '/v1/conversations/:id/items/:item_id',
      schema: { params: itemParams },
      handler: async (request) => {
        const { item_id: itemId } = request.params as { item_id: string };
        const updated = await this.update(request, (record) => {
          if (!record.items.some((item) => item.id === itemId)) {
            throw new ApiError(404, `No item with id '${itemId}' in this conversation.`, 'invalid_request_error', 'not_found', 'item_id');
          }
          return { ...record, items: record.items.filter((item) => item.id !== itemId) };
        });
        return updated.conversation;
      },
      openapi: {
        tags,
        operationId: 'deleteConversationItem',
        summary: 'Delete an item from a conversation',
        description: 'Answers the conversation.',
        parameters: [idParam, { name: 'item_id', in: 'path', required: true, schema: { type: 'string' } }],
        responses: { 200: conversationOk, 404: notFound, 503: unavailable },
      },
    });
  }

  private storeOrRefuse(): ResponseStore {
    if (this.store === null) {
      throw ApiError.invalidRequest('Conversations are not supported: this server does not store responses (RESPONSES_STORE_ENABLED=false).', null, 'unsupported_parameter');
    }
    return this.store;
  }

  private async conversation(request: FastifyRequest): Promise<StoredConversation> {
    const { id } = request.params as { id: string };
    const record = this.store === null ? undefined : await this.store.getConversation(id, ownerOf(request.apiKey));
    if (record === undefined) throw conversationNotFound(id);
    return record;
  }

  private async update(request: FastifyRequest, change: (record: StoredConversation) => StoredConversation): Promise<StoredConversation> {
    const { id } = request.params as { id: string };
    const updated = this.store === null ? undefined : await this.store.updateConversation(id, ownerOf(request.apiKey), change);
    if (updated === undefined) throw conversationNotFound(id);
    return updated;
  }
}

/**
 * Items as stored (with ids), after the checks a response would make of them (roles, call ids, …):
 * a conversation only holds items a response can be built on. Errors name `items[i]`.
 */
function checkedItems(input: readonly ResponsesInputItem[]): StoredItem[] {
  if (input.length === 0) return [];
  try {
    responsesChatBody({ model: 'conversation', input: [...input] } as ResponsesBody);
  } catch (error) {
    if (error instanceof ApiError && error.param?.startsWith('input') === true) {
      throw new ApiError(error.status, error.message.replaceAll("'input", "'items"), error.type, error.code, `items${error.param.slice('input'.length)}`);
    }
    throw error;
  }
  return storedInput([...input]);
}

/** Metadata keys up to 64 characters (OpenAPI 3.0 schemas cannot say it: `propertyNames` is not theirs). */
function checkMetadata(metadata: Record<string, string> | null | undefined): void {
  for (const key of Object.keys(metadata ?? {})) {
    if (key.length > 64) throw ApiError.invalidRequest(`Invalid body 'metadata': the key '${key.slice(0, 20)}…' is longer than 64 characters.`, 'metadata');
  }
}

function conversationNotFound(id: string): ApiError {
  return new ApiError(404, `Conversation with id '${id}' not found.`, 'invalid_request_error', 'not_found', 'id');
}

function storeFailed(): ApiError {
  return new ApiError(503, 'The store could not keep the conversation: try again.', 'server_error', 'store_unavailable');
}
