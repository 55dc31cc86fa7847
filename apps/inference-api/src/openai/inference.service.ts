import { Inject, Injectable } from '@nestjs/common';
import type {
  ChatMessage,
  ChatRequest,
  CompletionRequest,
  EmbeddingRequest,
  EmbeddingResult,
  GenerationParams,
  GenerationResult,
  ModelRouter,
  StreamPart,
  ToolCall,
  ToolChoice,
  ToolDefinition,
} from '@infer/model-providers';
import { ApiError } from '../common/api-error.js';
import type { ModelCatalog } from '../models/model-catalog.js';
import { MODEL_CATALOG, MODEL_ROUTER } from '../models/models.tokens.js';
import type { ChatCompletionBody, CompletionBody, EmbeddingBody } from './openai.schemas.js';

/** A validated, normalised inference request: what the cache keys on and the router executes. */
export type InferenceJob = (
  | { readonly kind: 'chat'; readonly model: string; readonly request: ChatRequest }
  | { readonly kind: 'completion'; readonly model: string; readonly request: CompletionRequest }
) & {
  /**
   * Set on the choices after the first of a sampled request with `n` > 1 and no seed (see
   * choiceJobs): part of the cache key, so that they are not one cached sample repeated.
   */
  readonly choice?: number;
};

const CHAT_KNOWN = new Set([
  'model', 'messages', 'max_tokens', 'max_completion_tokens', 'temperature', 'top_p', 'n', 'stream', 'stream_options',
  'stop', 'seed', 'presence_penalty', 'frequency_penalty', 'tools', 'tool_choice', 'parallel_tool_calls', 'logprobs', 'top_logprobs',
]);
const COMPLETION_KNOWN = new Set([
  'model', 'prompt', 'max_tokens', 'temperature', 'top_p', 'n', 'stream', 'stream_options', 'stop', 'seed',
  'presence_penalty', 'frequency_penalty', 'logprobs',
]);

/**
 * OpenAI's deprecated function-calling fields (before `tools`). Refused with a pointer to `tools`
 * rather than passed on: answers would carry a `function_call` the API does not return.
 */
const LEGACY_FUNCTION_FIELDS = ['functions', 'function_call'] as const;

/** A validated embeddings request. */
export interface EmbeddingJob {
  readonly model: string;
  readonly request: EmbeddingRequest;
  readonly encoding: 'float' | 'base64';
}

const EMBEDDING_KNOWN = new Set(['model', 'input', 'encoding_format', 'dimensions']);

/** OpenAI's default `max_tokens` for /v1/completions. */
const COMPLETION_DEFAULT_MAX_TOKENS = 16;

/** Most choices one request may ask for: `n`, or prompts × `n` for a completions batch (the schema's `n` maximum). */
const MAX_CHOICES = 128;

@Injectable()
export class InferenceService {
  constructor(
    @Inject(MODEL_ROUTER) private readonly router: ModelRouter,
    @Inject(MODEL_CATALOG) private readonly catalog: ModelCatalog,
  ) {}

  chatJob(body: ChatCompletionBody): InferenceJob {
    const model = this.assertModel(body.model, 'chat');
    assertNoLegacyFunctions(body);
    const messages: ChatMessage[] = new Array<ChatMessage>(body.messages.length);
    let toolHistory = false;
    for (let i = 0; i < body.messages.length; i++) {
      const m = body.messages[i] as ChatCompletionBody['messages'][number];
      if (m.tool_calls !== undefined || m.tool_call_id !== undefined || m.role === 'tool') {
        messages[i] = toolMessage(m, i);
        toolHistory ||= m.tool_calls !== undefined && m.tool_calls.length > 0;
        continue;
      }
      messages[i] = m.name === undefined ? { role: m.role, content: messageText(m, i) } : { role: m.role, content: messageText(m, i), name: m.name };
    }
    const request = params(body, body.max_completion_tokens ?? body.max_tokens ?? undefined, CHAT_KNOWN) as Mutable<ChatRequest>;
    request.messages = messages;
    let tools = body.tools !== undefined && body.tools !== null && body.tools.length > 0 ? body.tools : undefined;
    // tool_choice "none" asks for a text answer: a model without tool calling gives one, tools dropped.
    if (tools !== undefined && body.tool_choice === 'none' && this.router.capabilitiesOf(model)?.tools !== true) tools = undefined;
    if (tools !== undefined || toolHistory) this.assertTools(model, tools ?? []);
    if (tools !== undefined) request.tools = toolDefinitions(tools);
    if (body.tool_choice !== undefined) {
      const choice = toolChoice(body.tool_choice, request.tools);
      if (choice !== undefined) request.toolChoice = choice;
    }
    if (body.parallel_tool_calls !== undefined && body.parallel_tool_calls !== null && request.tools !== undefined) {
      request.parallelToolCalls = body.parallel_tool_calls;
    }
    if (body.logprobs === true) {
      this.assertLogprobs(model);
      request.logprobs = body.top_logprobs ?? 0;
    } else if (body.top_logprobs !== undefined && body.top_logprobs !== null) {
      // As OpenAI: alternatives without the chosen tokens' own log probabilities is an error.
      throw ApiError.invalidRequest("'top_logprobs' needs 'logprobs' set to true.", 'top_logprobs');
    }
    return { kind: 'chat', model, request };
  }

  /** The job of a completions request with one prompt (GET /predict). */
  completionJob(body: CompletionBody): InferenceJob {
    return this.completionJobs(body)[0] as InferenceJob;
  }

  /**
   * One job per prompt of a completions request: a string, or a batch (an array of strings; each
   * prompt its own generation, as OpenAI answers a batch). Token-id prompts are refused.
   */
  completionJobs(body: CompletionBody): InferenceJob[] {
    const model = this.assertModel(body.model, 'completion');
    const prompts: readonly unknown[] = typeof body.prompt === 'string' ? [body.prompt] : body.prompt;
    prompts.forEach((prompt, i) => {
      if (typeof prompt !== 'string') {
        throw ApiError.invalidRequest(
          "Token-id prompts are not supported: send the prompt as text (a string, or an array of strings for a batch).",
          typeof body.prompt === 'string' ? 'prompt' : `prompt[${i}]`,
          'unsupported_value',
        );
      }
    });
    const n = body.n ?? 1;
    if (prompts.length * n > MAX_CHOICES) {
      throw ApiError.invalidRequest(`A batch of ${prompts.length} prompts with n=${n} asks for ${prompts.length * n} choices; at most ${MAX_CHOICES}.`, 'n');
    }
    const request = params(body, body.max_tokens ?? COMPLETION_DEFAULT_MAX_TOKENS, COMPLETION_KNOWN) as Mutable<CompletionRequest>;
    if (body.logprobs !== undefined && body.logprobs !== null) {
      this.assertLogprobs(model);
      request.logprobs = body.logprobs;
    }
    return (prompts as string[]).map((prompt) => ({ kind: 'completion', model, request: { ...request, prompt } }));
  }

  embeddingJob(body: EmbeddingBody): EmbeddingJob {
    const model = this.assertModel(body.model, 'embeddings');
    const request: Mutable<EmbeddingRequest> = { input: typeof body.input === 'string' ? [body.input] : body.input };
    if (body.dimensions !== undefined) request.dimensions = body.dimensions;
    let extra: Record<string, unknown> | undefined;
    for (const key in body) {
      const value = body[key];
      if (!EMBEDDING_KNOWN.has(key) && value !== undefined) {
        if (typeof value === 'object' && value !== null) assertNesting(value, key);
        (extra ??= {})[key] = value;
      }
    }
    if (extra !== undefined) request.extra = extra;
    return { model, request, encoding: body.encoding_format ?? 'float' };
  }

  embed(job: EmbeddingJob, signal: AbortSignal): Promise<EmbeddingResult> {
    return this.router.run(
      job.model,
      (p) => {
        if (!p.embed) throw ApiError.invalidRequest(`The model '${job.model}' does not support embeddings.`, 'model', 'unsupported_model');
        return p.embed(job.request, { signal });
      },
      signal,
    );
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

  /** Tools, or tool calls in the history, need a model whose provider does tool calling. */
  private assertTools(model: string, tools: NonNullable<ChatCompletionBody['tools']>): void {
    if (this.router.capabilitiesOf(model)?.tools === true) return;
    const param = tools.length > 0 ? 'tools' : 'messages';
    throw ApiError.invalidRequest(
      `The model '${model}' does not support tool calling` +
        (tools.length > 0 ? `: send the request without 'tools'.` : `: its history cannot hold tool calls.`),
      param,
      'unsupported_parameter',
    );
  }

  /** Log probabilities need a model whose provider gives them: refused rather than answered without. */
  private assertLogprobs(model: string): void {
    if (this.router.capabilitiesOf(model)?.logprobs === true) return;
    throw ApiError.invalidRequest(
      `The model '${model}' does not return log probabilities: send the request without 'logprobs'.`,
      'logprobs',
      'unsupported_parameter',
    );
  }

  /** The model `name` names (itself, or the model it is an alias of), checked for `kind`. */
  private assertModel(name: string, kind: 'chat' | 'completion' | 'embeddings'): string {
    const model = this.catalog.resolve(name);
    if (model === undefined) throw ApiError.modelNotFound(name);
    const capabilities = this.router.capabilitiesOf(model);
    if (capabilities && !capabilities[kind]) {
      throw ApiError.invalidRequest(
        `The model '${model}' does not support ${kind === 'chat' ? 'chat completions' : kind}.`,
        'model',
        'unsupported_model',
      );
    }
    return model;
  }
}

/**
 * A message's content as text: a string, or its text parts joined. An assistant message's refusal
 * (a `refusal` part, or `refusal` beside empty content, as the SDKs send back an answer) counts as
 * what it said.
 */
function messageText(m: ChatCompletionBody['messages'][number], index: number): string {
  const content = m.content;
  if (typeof content === 'string') return content;
  const assistant = m.role === 'assistant';
  if (content === undefined || content === null) {
    const refusal = assistant ? (m as { refusal?: unknown }).refusal : undefined;
    return typeof refusal === 'string' ? refusal : '';
  }
  let text = '';
  for (const part of content) {
    if (part.type === 'text' && typeof part.text === 'string') text += part.text;
    else if (part.type === 'refusal' && assistant && typeof part.refusal === 'string') text += part.refusal;
    else throw ApiError.invalidRequest('Only text content parts are supported (and refusal parts in assistant messages).', `messages[${index}].content`);
  }
  return text;
}

type SharedBody = Pick<ChatCompletionBody, 'temperature' | 'top_p' | 'seed' | 'stop' | 'presence_penalty' | 'frequency_penalty'> & Record<string, unknown>;

type Mutable<T> = { -readonly [K in keyof T]: T[K] };

function assertNoLegacyFunctions(body: ChatCompletionBody): void {
  for (const field of LEGACY_FUNCTION_FIELDS) {
    const value = body[field];
    if (value === undefined || value === null || (Array.isArray(value) && value.length === 0)) continue;
    throw ApiError.invalidRequest(
      `'${field}' is deprecated and not supported: use '${field === 'functions' ? 'tools' : 'tool_choice'}'.`,
      field,
      'unsupported_parameter',
    );
  }
}

/** An assistant message with tool calls, or a tool result. */
function toolMessage(m: ChatCompletionBody['messages'][number], index: number): ChatMessage {
  const content = messageText(m, index);
  if (m.role === 'tool') {
    if (m.tool_call_id === undefined) {
      throw ApiError.invalidRequest(`messages[${index}]: a message with role 'tool' needs 'tool_call_id'.`, `messages[${index}].tool_call_id`);
    }
    if (m.tool_calls !== undefined) throw ApiError.invalidRequest(`messages[${index}]: only assistant messages have 'tool_calls'.`, `messages[${index}].tool_calls`);
    return { role: 'tool', content, toolCallId: m.tool_call_id };
  }
  if (m.tool_call_id !== undefined) {
    throw ApiError.invalidRequest(`messages[${index}]: only messages with role 'tool' have 'tool_call_id'.`, `messages[${index}].tool_call_id`);
  }
  if (m.role !== 'assistant') throw ApiError.invalidRequest(`messages[${index}]: only assistant messages have 'tool_calls'.`, `messages[${index}].tool_calls`);
  const calls = m.tool_calls ?? [];
  const toolCalls: ToolCall[] = calls.map((call) => ({ id: call.id, name: call.function.name, arguments: call.function.arguments }));
  const message: Mutable<ChatMessage> = { role: 'assistant', content };
  if (m.name !== undefined) message.name = m.name;
  if (toolCalls.length > 0) message.toolCalls = toolCalls;
  return message;
}

function toolDefinitions(tools: NonNullable<ChatCompletionBody['tools']>): ToolDefinition[] {
  const seen = new Set<string>();
  return tools.map((t, i) => {
    const fn = t.function as (typeof t)['function'] | undefined;
    if (fn === undefined) throw ApiError.invalidRequest(`tools[${i}]: a function tool needs 'function' (its name, description and parameters).`, `tools[${i}].function`);
    if (seen.has(fn.name)) throw ApiError.invalidRequest(`tools[${i}]: the function name '${fn.name}' is used twice.`, `tools[${i}].function.name`);
    seen.add(fn.name);
    const definition: Mutable<ToolDefinition> = { name: fn.name };
    if (fn.description !== undefined) definition.description = fn.description;
    if (fn.parameters !== undefined) {
      assertNesting(fn.parameters, `tools[${i}].function.parameters`);
      definition.parameters = fn.parameters;
    }
    if (fn.strict !== undefined && fn.strict !== null) definition.strict = fn.strict;
    return definition;
  });
}

/** The validated tool_choice; undefined for "none" without tools (nothing to say to the provider). */
function toolChoice(choice: NonNullable<ChatCompletionBody['tool_choice']>, tools: readonly ToolDefinition[] | undefined): ToolChoice | undefined {
  if (tools === undefined && choice === 'none') return undefined;
  // As OpenAI: any other tool_choice without tools is an error.
  if (tools === undefined) {
    throw ApiError.invalidRequest("'tool_choice' is only allowed when 'tools' are specified.", 'tool_choice');
  }
  if (typeof choice === 'string') return choice;
  const name = choice.function.name;
  if (!tools?.some((t) => t.name === name)) {
    throw ApiError.invalidRequest(`'tool_choice' names the function '${name}', which is not in 'tools'.`, 'tool_choice.function.name');
  }
  return { name };
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
    const value = body[key];
    if (!known.has(key) && value !== undefined) {
      if (typeof value === 'object' && value !== null) assertNesting(value, key);
      (extra ??= {})[key] = value;
    }
  }
  if (extra !== undefined) out.extra = extra;
  return out;
}

/** How deep a free-form value (unknown fields, JSON Schemas) may nest: far more than any real schema. */
export const MAX_NESTING = 64;

/**
 * Refuses a free-form value nested deeper than MAX_NESTING levels. The fields the request schemas
 * describe are bounded by them; these are not, and the cache key, the upstream body and the
 * grammar compiler all walk them recursively (10 000 levels fit in 25 KB of JSON and overflowed
 * the stack: a 500). Iterative, so the check itself cannot overflow.
 */
export function assertNesting(value: object, param: string): void {
  const stack: Array<[unknown, number]> = [[value, 1]];
  while (stack.length > 0) {
    const [node, depth] = stack.pop() as [unknown, number];
    if (typeof node !== 'object' || node === null) continue;
    if (depth > MAX_NESTING) throw ApiError.invalidRequest(`Invalid body '${param}': nested deeper than ${MAX_NESTING} levels.`, param);
    for (const child of Array.isArray(node) ? node : Object.values(node)) {
      if (typeof child === 'object' && child !== null) stack.push([child, depth + 1]);
    }
  }
}
