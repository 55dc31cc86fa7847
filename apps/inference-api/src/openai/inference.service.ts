import { Inject, Injectable } from '@nestjs/common';
import type {
  ChatMessage,
  ChatRequest,
  CompletionRequest,
  GenerationParams,
  GenerationResult,
  ModelRouter,
  StreamPart,
} from '@infer/model-providers';
import { ApiError } from '../common/api-error.js';
import type { ModelCatalog } from '../models/model-catalog.js';
import { MODEL_CATALOG, MODEL_ROUTER } from '../models/models.tokens.js';
import type { ChatCompletionBody, CompletionBody } from './openai.schemas.js';

/** A validated, normalised inference request: what the cache keys on and the router executes. */
export type InferenceJob =
  | { readonly kind: 'chat'; readonly model: string; readonly request: ChatRequest }
  | { readonly kind: 'completion'; readonly model: string; readonly request: CompletionRequest };

const CHAT_KNOWN = new Set([
  'model', 'messages', 'max_tokens', 'max_completion_tokens', 'temperature', 'top_p', 'n', 'stream', 'stream_options',
  'stop', 'seed', 'presence_penalty', 'frequency_penalty',
]);
const COMPLETION_KNOWN = new Set([
  'model', 'prompt', 'max_tokens', 'temperature', 'top_p', 'n', 'stream', 'stream_options', 'stop', 'seed',
  'presence_penalty', 'frequency_penalty',
]);

/**
 * Chat fields that ask for tool (function) calls. The provider contract carries text only, so an
 * upstream's `tool_calls` would be dropped and the client would get an empty answer with
 * `finish_reason: "tool_calls"`: such requests are refused instead (LiteLLM's default for
 * parameters a provider cannot honour).
 */
const TOOL_FIELDS = ['tools', 'functions'] as const;

/** OpenAI's default `max_tokens` for /v1/completions. */
const COMPLETION_DEFAULT_MAX_TOKENS = 16;

@Injectable()
export class InferenceService {
  constructor(
    @Inject(MODEL_ROUTER) private readonly router: ModelRouter,
    @Inject(MODEL_CATALOG) private readonly catalog: ModelCatalog,
  ) {}

  chatJob(body: ChatCompletionBody): InferenceJob {
    this.assertModel(body.model, 'chat');
    assertNoTools(body);
    const messages: ChatMessage[] = new Array<ChatMessage>(body.messages.length);
    for (let i = 0; i < body.messages.length; i++) {
      const m = body.messages[i] as ChatCompletionBody['messages'][number];
      messages[i] = m.name === undefined ? { role: m.role, content: messageText(m.content, i) } : { role: m.role, content: messageText(m.content, i), name: m.name };
    }
    const request = params(body, body.max_completion_tokens ?? body.max_tokens ?? undefined, CHAT_KNOWN) as Mutable<ChatRequest>;
    request.messages = messages;
    return { kind: 'chat', model: body.model, request };
  }

  completionJob(body: CompletionBody): InferenceJob {
    this.assertModel(body.model, 'completion');
    const request = params(body, body.max_tokens ?? COMPLETION_DEFAULT_MAX_TOKENS, COMPLETION_KNOWN) as Mutable<CompletionRequest>;
    request.prompt = typeof body.prompt === 'string' ? body.prompt : (body.prompt[0] ?? '');
    return { kind: 'completion', model: body.model, request };
  }

  generate(job: InferenceJob, signal: AbortSignal): Promise<GenerationResult> {
    return job.kind === 'chat'
      ? this.router.run(job.model, (p) => p.chat(job.request, { signal }), signal)
      : this.router.run(job.model, (p) => p.complete(job.request, { signal }), signal);
  }

  stream(job: InferenceJob, signal: AbortSignal): AsyncIterable<StreamPart> {
    return job.kind === 'chat'
      ? this.router.stream(job.model, (p) => p.streamChat(job.request, { signal }), signal)
      : this.router.stream(job.model, (p) => p.streamComplete(job.request, { signal }), signal);
  }

  private assertModel(model: string, kind: 'chat' | 'completion'): void {
    if (!this.catalog.get(model)) throw ApiError.modelNotFound(model);
    const capabilities = this.router.capabilitiesOf(model);
    if (capabilities && !capabilities[kind]) {
      throw ApiError.invalidRequest(
        `The model '${model}' does not support ${kind === 'chat' ? 'chat completions' : 'completions'}.`,
        'model',
        'unsupported_model',
      );
    }
  }
}

function messageText(content: ChatCompletionBody['messages'][number]['content'], index: number): string {
  if (content === undefined || content === null) return '';
  if (typeof content === 'string') return content;
  let text = '';
  for (const part of content) {
    if (part.type !== 'text' || typeof part.text !== 'string') {
      throw ApiError.invalidRequest('Only text content parts are supported.', `messages[${index}].content`);
    }
    text += part.text;
  }
  return text;
}

type SharedBody = Pick<ChatCompletionBody, 'temperature' | 'top_p' | 'seed' | 'stop' | 'presence_penalty' | 'frequency_penalty'> & Record<string, unknown>;

type Mutable<T> = { -readonly [K in keyof T]: T[K] };

function assertNoTools(body: ChatCompletionBody): void {
  for (const field of TOOL_FIELDS) {
    const value = body[field];
    if (value === undefined || value === null || (Array.isArray(value) && value.length === 0)) continue;
    throw ApiError.invalidRequest(
      `'${field}' is not supported: this server does not return tool or function calls. Send the request without '${field}'.`,
      field,
      'unsupported_parameter',
    );
  }
}

/**
 * The normalised generation parameters (OpenAI's nulls dropped, `stop` as an array, unknown fields
 * in `extra`). Built by assignment into one object: this runs for every request.
 */
function params(body: SharedBody, maxTokens: number | undefined, known: ReadonlySet<string>): Mutable<GenerationParams> {
  const out: Mutable<GenerationParams> = {};
  if (maxTokens !== undefined) out.maxTokens = maxTokens;
  if (body.temperature != null) out.temperature = body.temperature;
  if (body.top_p != null) out.topP = body.top_p;
  if (body.seed != null) out.seed = body.seed;
  const stop = body.stop;
  if (typeof stop === 'string') out.stop = [stop];
  else if (stop != null && stop.length > 0) out.stop = stop;
  if (body.presence_penalty != null) out.presencePenalty = body.presence_penalty;
  if (body.frequency_penalty != null) out.frequencyPenalty = body.frequency_penalty;
  let extra: Record<string, unknown> | undefined;
  for (const key in body) {
    if (!known.has(key) && body[key] !== undefined) (extra ??= {})[key] = body[key];
  }
  if (extra !== undefined) out.extra = extra;
  return out;
}
