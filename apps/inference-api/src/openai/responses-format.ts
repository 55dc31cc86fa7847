import type { FinishReason, GenerationResult, StreamPart, TokenUsage, ToolCall } from '@infer/model-providers';
import { ApiError, type OpenAIErrorBody } from '../common/api-error.js';
import { randomHex24 } from './openai-format.js';
import type { StoredItem, StoredResponse } from './response-store.js';
import type { ResponsesBody, ResponsesTextFormat } from './responses.schemas.js';

/**
 * OpenAI's Responses API shapes, built from the chat path's results: the `Response` object (JSON
 * answers, and the first and last events of a stream) and the stream's events (ResponseStreamEvents).
 */

type ItemStatus = 'in_progress' | 'completed' | 'incomplete';
export type ResponseStatus = 'queued' | 'in_progress' | 'completed' | 'incomplete' | 'failed' | 'cancelled';

export function responseId(): string {
  return `resp_${randomHex24()}`;
}

export function conversationId(): string {
  return `conv_${randomHex24()}`;
}

export function itemId(prefix: 'msg' | 'fc' | 'fco'): string {
  return `${prefix}_${randomHex24()}`;
}

/** The request fields a Response echoes (computed once per request). */
export interface ResponseEcho {
  readonly instructions: string | null;
  readonly max_output_tokens: number | null;
  readonly parallel_tool_calls: boolean;
  readonly temperature: number;
  readonly top_p: number;
  readonly text: { readonly format: ResponsesTextFormat; readonly [other: string]: unknown };
  readonly tool_choice: NonNullable<ResponsesBody['tool_choice']>;
  readonly tools: ReadonlyArray<{ type: 'function'; name: string; description: string | null; parameters: Record<string, unknown> | null; strict: boolean | null }>;
  readonly metadata: Readonly<Record<string, string>>;
  readonly user: string | undefined;
}

/** The echo of a request, with OpenAI's defaults made explicit (temperature and top_p 1, tool_choice auto, ...). */
export function responseEcho(body: ResponsesBody): ResponseEcho {
  return {
    instructions: body.instructions ?? null,
    max_output_tokens: body.max_output_tokens ?? null,
    parallel_tool_calls: body.parallel_tool_calls ?? true,
    temperature: body.temperature ?? 1,
    top_p: body.top_p ?? 1,
    text: { ...body.text, format: body.text?.format ?? { type: 'text' } },
    tool_choice: body.tool_choice ?? 'auto',
    // Validated by responsesChatBody: function tools with a name.
    tools: (body.tools ?? []).map((t) => ({
      type: 'function' as const,
      name: t.name ?? '',
      description: t.description ?? null,
      parameters: t.parameters ?? null,
      strict: t.strict ?? null,
    })),
    metadata: body.metadata ?? {},
    user: body.user,
  };
}

/** What every Response of one request shares. */
export interface ResponseHead {
  readonly id: string;
  /** Unix seconds. */
  readonly createdAt: number;
  readonly model: string;
  readonly echo: ResponseEcho;
  /** The response is to be stored (`store`, and a store configured); a failed write answers false. */
  readonly store: boolean;
  readonly previousResponseId: string | null;
  /** `background: true`: answered at once as `queued`, run afterwards, polled with GET /v1/responses/{id}. */
  readonly background?: boolean;
  /** The conversation the response belongs to (`conversation`): its items went before the input, its input and output are added to it. */
  readonly conversation?: string;
}

export function responseUsage(usage: TokenUsage) {
  return {
    input_tokens: usage.promptTokens,
    input_tokens_details: { cached_tokens: usage.cachedPromptTokens ?? 0 },
    output_tokens: usage.completionTokens,
    output_tokens_details: { reasoning_tokens: 0 },
    total_tokens: usage.promptTokens + usage.completionTokens,
  };
}

export function outputText(text: string) {
  return { type: 'output_text' as const, text, annotations: [] as never[], logprobs: [] as never[] };
}

export function refusalPart(refusal: string) {
  return { type: 'refusal' as const, refusal };
}

type MessagePart = ReturnType<typeof outputText> | ReturnType<typeof refusalPart>;

/**
 * An assistant message item: its text as an `output_text` part (none when `text` is undefined, or ''
 * beside a refusal), its refusal as a `refusal` part; `refusalFirst` when the refusal came first.
 */
export function messageItem(id: string, status: ItemStatus, text: string | undefined, refusal?: string, refusalFirst = false) {
  const content: MessagePart[] = [];
  if (text !== undefined && (text !== '' || refusal === undefined)) content.push(outputText(text));
  if (refusal !== undefined) {
    if (refusalFirst) content.unshift(refusalPart(refusal));
    else content.push(refusalPart(refusal));
  }
  return { type: 'message' as const, id, status, role: 'assistant' as const, content };
}

export function functionCallItem(id: string, status: ItemStatus, call: ToolCall) {
  return { type: 'function_call' as const, id, call_id: call.id, name: call.name, arguments: call.arguments, status };
}

export type OutputItem = ReturnType<typeof messageItem> | ReturnType<typeof functionCallItem>;

/** A finish reason as the Response's status (and `incomplete_details`). */
function outcome(reason: FinishReason): { status: 'completed' | 'incomplete'; incomplete: { reason: 'max_output_tokens' | 'content_filter' } | null } {
  if (reason === 'length') return { status: 'incomplete', incomplete: { reason: 'max_output_tokens' } };
  if (reason === 'content_filter') return { status: 'incomplete', incomplete: { reason: 'content_filter' } };
  return { status: 'completed', incomplete: null };
}

interface ResponseState {
  readonly status: ResponseStatus;
  readonly output: readonly OutputItem[];
  readonly usage: TokenUsage | null;
  readonly incomplete?: { reason: 'max_output_tokens' | 'content_filter' } | null;
  readonly error?: { code: string; message: string } | null;
}

/** OpenAI's `Response` object, in OpenAI's field order. */
export type ResponseObject = ReturnType<typeof responseObject>;

export function responseObject(head: ResponseHead, state: ResponseState) {
  const echo = head.echo;
  const response = {
    id: head.id,
    object: 'response' as const,
    created_at: head.createdAt,
    status: state.status,
    background: head.background === true,
    completed_at: state.status === 'completed' ? Math.floor(Date.now() / 1000) : null,
    error: state.error ?? null,
    incomplete_details: state.incomplete ?? null,
    instructions: echo.instructions,
    max_output_tokens: echo.max_output_tokens,
    model: head.model,
    output: state.output,
    parallel_tool_calls: echo.parallel_tool_calls,
    previous_response_id: head.previousResponseId,
    reasoning: null,
    store: head.store,
    temperature: echo.temperature,
    text: echo.text,
    tool_choice: echo.tool_choice,
    tools: echo.tools,
    top_p: echo.top_p,
    truncation: 'disabled' as const,
    usage: state.usage === null ? null : responseUsage(state.usage),
    metadata: echo.metadata,
  };
  const withConversation = head.conversation === undefined ? response : { ...response, conversation: { id: head.conversation } };
  return echo.user === undefined ? withConversation : { ...withConversation, user: echo.user };
}

/**
 * The Response of a whole result: a message item when there is text (or nothing else: an empty
 * answer is an empty message), then one function_call item per tool call.
 */
export function responseBody(head: ResponseHead, result: GenerationResult) {
  const { status, incomplete } = outcome(result.finishReason);
  const itemStatus = status === 'incomplete' ? 'incomplete' : 'completed';
  const calls = result.toolCalls ?? [];
  const output: OutputItem[] = [];
  if (result.text !== '' || result.refusal !== undefined || calls.length === 0) output.push(messageItem(itemId('msg'), itemStatus, result.text, result.refusal));
  for (const call of calls) output.push(functionCallItem(itemId('fc'), itemStatus, call));
  return responseObject(head, { status, output, usage: result.usage, incomplete });
}

/** A Response without output yet (a background response `queued` or `in_progress`), or one that was `cancelled`. */
export function pendingResponseBody(head: ResponseHead, status: 'queued' | 'in_progress' | 'cancelled') {
  return responseObject(head, { status, output: [], usage: null });
}

/** A Response that failed (a background one: its error is in the object, as GET returns it). */
export function failedResponseBody(head: ResponseHead, status: number, body: OpenAIErrorBody) {
  return responseObject(head, { status: 'failed', output: [], usage: null, error: { code: failureCode(status), message: body.error.message } });
}

/** `response.error.code` (an enum in OpenAI's types) for an error of this status. */
function failureCode(status: number): string {
  if (status === 429) return 'rate_limit_exceeded';
  if (status === 400) return 'invalid_prompt';
  return 'server_error';
}

interface OpenMessage {
  readonly kind: 'message';
  readonly id: string;
  readonly index: number;
  text: string;
  /** The content index of its output_text part; undefined until text comes (a message may hold only a refusal). */
  textIndex: number | undefined;
  refusal: string | undefined;
  /** The content index of its refusal part, once a refusal came. */
  refusalIndex: number | undefined;
  /** Set once its done events went out. */
  done?: OutputItem;
}

interface OpenCall {
  readonly kind: 'call';
  readonly id: string;
  readonly index: number;
  readonly call: { id: string; name: string; arguments: string };
  done?: OutputItem;
}

/**
 * The server-sent events of one streamed response, in OpenAI's order: `response.created` and
 * `response.in_progress`; per output item `response.output_item.added`, its content events and
 * `response.output_item.done`; then `response.completed` (or `response.incomplete`) with the whole
 * Response. Each method returns the frames (`event: <type>\ndata: <json>\n\n`, possibly several) to
 * write for one stream part, numbered by `sequence_number`.
 *
 * A message item is closed when the first function call starts (text comes first, as from OpenAI);
 * text after function calls opens a new message item. Function call items stay open until the
 * finish, so that argument pieces of several calls may interleave.
 */
export class ResponseStreamEvents {
  private sequence = 0;
  private readonly items: Array<OpenMessage | OpenCall> = [];
  private message: OpenMessage | undefined;
  /** Open function calls by their index in the provider's stream. */
  private readonly calls: OpenCall[] = [];

  constructor(private readonly head: ResponseHead) {}

  /** `response.created` and `response.in_progress`. */
  start(): string {
    const response = responseObject(this.head, { status: 'in_progress', output: [], usage: null });
    return this.frame('response.created', { response }) + this.frame('response.in_progress', { response });
  }

  /** The frames of one provider stream part ('' when there is nothing to send). */
  part(part: StreamPart): string {
    if (part.type === 'delta') return part.text.length === 0 ? '' : this.text(part.text);
    if (part.type === 'tool_call') return this.toolCall(part.index, part.id, part.name, part.arguments);
    if (part.type === 'refusal') return part.text.length === 0 ? '' : this.refusal(part.text);
    const { frames, response } = this.finish(part.finishReason, part.usage);
    return frames + this.last(response);
  }

  /**
   * The finish part in two steps, for a caller that stores the response before the client learns of
   * it: the items' done events and the final Response, then (`last`) the `response.completed` or
   * `response.incomplete` event carrying it.
   */
  finish(reason: FinishReason, usage: TokenUsage): { frames: string; response: ResponseObject } {
    const { status, incomplete } = outcome(reason);
    const itemStatus = status === 'incomplete' ? 'incomplete' : 'completed';
    let frames = '';
    // An answer with neither text nor calls is an empty message, as in the JSON answer.
    if (this.items.length === 0) frames += this.openMessage(true)[1];
    if (this.message !== undefined) frames += this.closeMessage(this.message, itemStatus);
    for (const item of this.items) {
      if (item.kind !== 'call' || item.done !== undefined) continue;
      const done = functionCallItem(item.id, itemStatus, item.call);
      item.done = done;
      frames += this.frame('response.function_call_arguments.done', { item_id: item.id, output_index: item.index, name: item.call.name, arguments: item.call.arguments });
      frames += this.frame('response.output_item.done', { output_index: item.index, item: done });
    }
    const output = this.items.map((item) => item.done as OutputItem);
    return { frames, response: responseObject(this.head, { status, output, usage, incomplete }) };
  }

  /** The last event: `response.completed` (or `response.incomplete`) with the whole Response. */
  last(response: ResponseObject): string {
    return this.frame(response.status === 'completed' ? 'response.completed' : 'response.incomplete', { response });
  }

  /** The frames of an error after the stream started: an `error` event, then `response.failed`. */
  failed(status: number, body: OpenAIErrorBody): string {
    const { message, code, param } = body.error;
    let frames = this.frame('error', { code, message, param });
    const output = this.items.map((item) => item.done ?? this.itemOf(item, 'incomplete'));
    const response = responseObject(this.head, { status: 'failed', output, usage: null, error: { code: failureCode(status), message } });
    frames += this.frame('response.failed', { response });
    return frames;
  }

  private text(text: string): string {
    let frames = '';
    let message = this.message;
    if (message === undefined) [message, frames] = this.openMessage(true);
    else if (message.textIndex === undefined) frames = this.addTextPart(message);
    message.text += text;
    // Written out: this is the event of every token.
    return (
      frames +
      `event: response.output_text.delta\ndata: {"type":"response.output_text.delta","sequence_number":${this.sequence++},"item_id":"${message.id}",` +
      `"output_index":${message.index},"content_index":${message.textIndex ?? 0},"delta":${JSON.stringify(text)},"logprobs":[]}\n\n`
    );
  }

  /** A piece of a refusal: a refusal part in the open message (opened when there is none). */
  private refusal(text: string): string {
    let frames = '';
    let message = this.message;
    if (message === undefined) [message, frames] = this.openMessage(false);
    if (message.refusalIndex === undefined) {
      message.refusalIndex = (message.textIndex === undefined ? 0 : 1);
      message.refusal = '';
      frames += this.frame('response.content_part.added', { item_id: message.id, output_index: message.index, content_index: message.refusalIndex, part: refusalPart('') });
    }
    message.refusal += text;
    return frames + this.frame('response.refusal.delta', { item_id: message.id, output_index: message.index, content_index: message.refusalIndex, delta: text });
  }

  /** Starts a message item (`this.message`), with an output_text part when `withText`; returns it and its added events. */
  private openMessage(withText: boolean): [OpenMessage, string] {
    const message: OpenMessage = { kind: 'message', id: itemId('msg'), index: this.items.length, text: '', textIndex: undefined, refusal: undefined, refusalIndex: undefined };
    this.message = message;
    this.items.push(message);
    const added = this.frame('response.output_item.added', { output_index: message.index, item: messageItem(message.id, 'in_progress', undefined) });
    return [message, withText ? added + this.addTextPart(message) : added];
  }

  /** The output_text part of a message, after its refusal part if it has one. */
  private addTextPart(message: OpenMessage): string {
    message.textIndex = message.refusalIndex === undefined ? 0 : 1;
    return this.frame('response.content_part.added', { item_id: message.id, output_index: message.index, content_index: message.textIndex, part: outputText('') });
  }

  private toolCall(index: number, id: string | undefined, name: string | undefined, args: string): string {
    let frames = '';
    let call = this.calls[index];
    if (call === undefined) {
      if (this.message !== undefined) frames += this.closeMessage(this.message, 'completed');
      call = { kind: 'call', id: itemId('fc'), index: this.items.length, call: { id: id ?? '', name: name ?? '', arguments: '' } };
      this.calls[index] = call;
      this.items.push(call);
      frames += this.frame('response.output_item.added', { output_index: call.index, item: functionCallItem(call.id, 'in_progress', call.call) });
    }
    if (args.length > 0) {
      call.call.arguments += args;
      frames += this.frame('response.function_call_arguments.delta', { item_id: call.id, output_index: call.index, delta: args });
    }
    return frames;
  }

  private closeMessage(message: OpenMessage, status: ItemStatus): string {
    this.message = undefined;
    const done = this.itemOf(message, status);
    message.done = done;
    const { id, index } = message;
    const textDone = (contentIndex: number) =>
      this.frame('response.output_text.done', { item_id: id, output_index: index, content_index: contentIndex, text: message.text, logprobs: [] }) +
      this.frame('response.content_part.done', { item_id: id, output_index: index, content_index: contentIndex, part: outputText(message.text) });
    const refusalDone = (contentIndex: number, refusal: string) =>
      this.frame('response.refusal.done', { item_id: id, output_index: index, content_index: contentIndex, refusal }) +
      this.frame('response.content_part.done', { item_id: id, output_index: index, content_index: contentIndex, part: refusalPart(refusal) });
    let frames = '';
    // In content order.
    for (let contentIndex = 0; contentIndex < 2; contentIndex++) {
      if (message.textIndex === contentIndex) frames += textDone(contentIndex);
      else if (message.refusalIndex === contentIndex && message.refusal !== undefined) frames += refusalDone(contentIndex, message.refusal);
    }
    return frames + this.frame('response.output_item.done', { output_index: index, item: done });
  }

  private itemOf(item: OpenMessage | OpenCall, status: ItemStatus): OutputItem {
    if (item.kind === 'call') return functionCallItem(item.id, status, item.call);
    return messageItem(item.id, status, item.textIndex === undefined ? undefined : item.text, item.refusal, item.refusalIndex === 0 && item.textIndex !== undefined);
  }

  private frame(type: string, payload: Record<string, unknown>): string {
    return `event: ${type}\ndata: ${JSON.stringify({ type, sequence_number: this.sequence++, ...payload })}\n\n`;
  }
}

/** A stored output item as the replay reads it (messages and function calls, as this server writes them). */
interface StoredOutputItem {
  readonly type: string;
  readonly id: string;
  readonly content?: ReadonlyArray<{ readonly type: string; readonly text?: string; readonly refusal?: string }>;
  readonly name?: string;
  readonly arguments?: string;
  readonly [field: string]: unknown;
}

/**
 * The events of a stored response, streamed again (GET /v1/responses/{id}?stream=true, and a
 * background response created with `stream: true`): the event types of a live stream, each content
 * part's text in one delta. Numbered the same way every time for the same response (a background
 * response streamed at its creation is streamed by this too), so `starting_after` (the last
 * sequence_number a client saw) resumes where it left off; a response streamed live numbered every
 * token, so its numbers do not carry over. The events:
 * `response.created`, `response.queued` (background responses), `response.in_progress`, the items'
 * events, then `response.completed` / `response.incomplete` / `response.failed` (a cancelled
 * response ends with an `error` event, as there is no event for it). Frames numbered up to
 * `startingAfter` are left out.
 */
export class StoredResponseEvents {
  private sequence = 0;
  private inProgressSent = false;

  constructor(private readonly startingAfter = -1) {}

  /** `response.created` (and `response.queued` for a background response), with the response as it is now, without output. */
  start(response: ResponseObjectLike): string {
    const pending = { ...response, output: [], usage: null };
    let frames = this.frame('response.created', { response: pending });
    if (response['background'] === true) {
      frames += this.frame('response.queued', { response: { ...pending, status: 'queued' } });
    }
    return frames + this.progress(response);
  }

  /** `response.in_progress` once the response runs (or ran): '' while it is queued, and after the first time. */
  progress(response: ResponseObjectLike): string {
    if (this.inProgressSent || response['status'] === 'queued') return '';
    this.inProgressSent = true;
    return this.frame('response.in_progress', { response: { ...response, status: 'in_progress', output: [], usage: null } });
  }

  /** The events of a finished response: its output items, then the last event. */
  end(response: ResponseObjectLike): string {
    let frames = this.progress(response);
    const output = response['output'] as readonly StoredOutputItem[];
    output.forEach((item, index) => {
      frames += item.type === 'message' ? this.message(item, index) : item.type === 'function_call' ? this.call(item, index) : '';
    });
    switch (response['status']) {
      case 'completed':
        return frames + this.frame('response.completed', { response });
      case 'incomplete':
        return frames + this.frame('response.incomplete', { response });
      case 'failed':
        return frames + this.frame('response.failed', { response });
      default:
        return frames + this.frame('error', { code: 'response_cancelled', message: 'This response was cancelled before it finished.', param: null });
    }
  }

  private message(item: StoredOutputItem, index: number): string {
    const base = { item_id: item.id, output_index: index };
    let frames = this.frame('response.output_item.added', { output_index: index, item: { ...item, status: 'in_progress', content: [] } });
    (item.content ?? []).forEach((part, contentIndex) => {
      const at = { ...base, content_index: contentIndex };
      if (part.type === 'refusal') {
        const refusal = part.refusal ?? '';
        frames += this.frame('response.content_part.added', { ...at, part: refusalPart('') });
        if (refusal !== '') frames += this.frame('response.refusal.delta', { ...at, delta: refusal });
        frames += this.frame('response.refusal.done', { ...at, refusal });
      } else {
        const text = part.text ?? '';
        frames += this.frame('response.content_part.added', { ...at, part: outputText('') });
        if (text !== '') frames += this.frame('response.output_text.delta', { ...at, delta: text, logprobs: [] });
        frames += this.frame('response.output_text.done', { ...at, text, logprobs: [] });
      }
      frames += this.frame('response.content_part.done', { ...at, part });
    });
    return frames + this.frame('response.output_item.done', { output_index: index, item });
  }

  private call(item: StoredOutputItem, index: number): string {
    const args = item.arguments ?? '';
    let frames = this.frame('response.output_item.added', { output_index: index, item: { ...item, status: 'in_progress', arguments: '' } });
    if (args !== '') frames += this.frame('response.function_call_arguments.delta', { item_id: item.id, output_index: index, delta: args });
    frames += this.frame('response.function_call_arguments.done', { item_id: item.id, output_index: index, name: item.name, arguments: args });
    return frames + this.frame('response.output_item.done', { output_index: index, item });
  }

  private frame(type: string, payload: Record<string, unknown>): string {
    const sequence = this.sequence++;
    if (sequence <= this.startingAfter) return '';
    return `event: ${type}\ndata: ${JSON.stringify({ type, sequence_number: sequence, ...payload })}\n\n`;
  }
}

/** A Response object as stored (any version of this server wrote it). */
export type ResponseObjectLike = { readonly id: string; readonly output: readonly Record<string, unknown>[]; readonly [field: string]: unknown };

/**
 * A request's `input` as the stored items GET /v1/responses/{id}/input_items lists: each with an id
 * (OpenAI's prefixes: `msg_`, `fc_`, and `fco_` for function outputs), a text input as one user
 * message, message content as parts.
 */
export function storedInput(input: ResponsesBody['input']): StoredItem[] {
  if (typeof input === 'string') return [{ id: itemId('msg'), type: 'message', role: 'user', status: 'completed', content: [{ type: 'input_text', text: input }] }];
  return input.map((item): StoredItem => {
    const type = item.type ?? 'message';
    const id = typeof item['id'] === 'string' ? item['id'] : itemId(type === 'function_call' ? 'fc' : type === 'function_call_output' ? 'fco' : 'msg');
    if (type !== 'message') return { ...item, id, type };
    // As OpenAI lists them: a message has a status, an output_text part its annotations.
    const status = item['status'] ?? 'completed';
    if (typeof item.content === 'string') {
      const part = item.role === 'assistant' ? { type: 'output_text', text: item.content, annotations: [] } : { type: 'input_text', text: item.content };
      return { ...item, id, type, status, content: [part] };
    }
    const content = item.content?.map((part) => (part.type === 'output_text' && part['annotations'] === undefined ? { ...part, annotations: [] } : part));
    return { ...item, id, type, status, ...(content === undefined ? {} : { content }) };
  });
}

/** The conversation a response continuing `record` (its `previous_response_id`) starts from: everything before, its input, its output. */
export function continuation(record: StoredResponse): StoredItem[] {
  return [...record.context, ...record.input, ...(record.response.output as unknown as StoredItem[])];
}

/** A page of items (input_items of a response, items of a conversation): newest first unless `asc`, `limit` of them after the id `after`. */
export function itemList(items: readonly StoredItem[], query: { limit: number; order: 'asc' | 'desc'; after?: string }, what: string) {
  const ordered = query.order === 'asc' ? items : [...items].reverse();
  let start = 0;
  if (query.after !== undefined) {
    const at = ordered.findIndex((item) => item.id === query.after);
    if (at < 0) throw ApiError.invalidRequest(`No item with id '${query.after}' in this ${what}.`, 'after');
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

/** `limit` of a list query (1-100; validated here because query strings are not coerced). */
export function listLimit(value: string): number {
  const limit = /^[0-9]{1,3}$/.test(value) ? Number(value) : 0;
  if (limit < 1 || limit > 100) throw ApiError.invalidRequest("Invalid query parameter 'limit': must be an integer from 1 to 100.", 'limit');
  return limit;
}
