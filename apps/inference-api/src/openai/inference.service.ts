import { Inject, Injectable } from '@nestjs/common';
import type {
  ChatMessage,
  ChatRequest,
  CompletionRequest,
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
    const messages: ChatMessage[] = body.messages.map((m, i) => ({
      role: m.role,
      content: messageText(m.content, i),
      ...(m.name === undefined ? {} : { name: m.name }),
    }));
    return {
      kind: 'chat',
      model: body.model,
      request: {
        messages,
        ...params(body, body.max_completion_tokens ?? body.max_tokens ?? undefined, CHAT_KNOWN),
      },
    };
  }

  completionJob(body: CompletionBody): InferenceJob {
    this.assertModel(body.model, 'completion');
    const prompt = typeof body.prompt === 'string' ? body.prompt : (body.prompt[0] ?? '');
    return {
      kind: 'completion',
      model: body.model,
      request: { prompt, ...params(body, body.max_tokens ?? COMPLETION_DEFAULT_MAX_TOKENS, COMPLETION_KNOWN) },
    };
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

function params(body: SharedBody, maxTokens: number | undefined, known: ReadonlySet<string>) {
  let extra: Record<string, unknown> | undefined;
  for (const key in body) {
    if (!known.has(key) && body[key] !== undefined) (extra ??= {})[key] = body[key];
  }
  const stop = body.stop === null || body.stop === undefined ? undefined : typeof body.stop === 'string' ? [body.stop] : body.stop;
  return {
    ...(maxTokens === undefined ? {} : { maxTokens }),
    ...(body.temperature == null ? {} : { temperature: body.temperature }),
    ...(body.top_p == null ? {} : { topP: body.top_p }),
    ...(body.seed == null ? {} : { seed: body.seed }),
    ...(stop === undefined || stop.length === 0 ? {} : { stop }),
    ...(body.presence_penalty == null ? {} : { presencePenalty: body.presence_penalty }),
    ...(body.frequency_penalty == null ? {} : { frequencyPenalty: body.frequency_penalty }),
    ...(extra === undefined ? {} : { extra }),
  };
}
