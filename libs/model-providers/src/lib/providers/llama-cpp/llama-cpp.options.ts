import type { OptionsSchema } from '../../registry/provider-definition.js';

/** node-llama-cpp 3.21.1's `resolvableChatWrapperTypeNames` (a spec checks they still match). */
export const LLAMA_CPP_CHAT_WRAPPERS = [
  'auto',
  'general',
  'deepSeek',
  'qwen',
  'llama3.2-lightweight',
  'llama3.1',
  'llama3',
  'llama2Chat',
  'mistral',
  'alpacaChat',
  'functionary',
  'chatML',
  'falconChat',
  'gemma4',
  'gemma',
  'harmony',
  'muse',
  'seed',
  'template',
  'jinjaTemplate',
] as const;
export type LlamaCppChatWrapperName = (typeof LLAMA_CPP_CHAT_WRAPPERS)[number];

/** Deployment options of the `llama-cpp` provider (in-process llama.cpp through node-llama-cpp). */
export interface LlamaCppProviderOptions {
  /**
   * The GGUF file. Relative paths are resolved against the models file's folder. `builtin:tiny-llama`
   * (or `builtin:tiny-llama-large`) is the project's own tiny noise model, written on first use.
   */
  readonly modelPath: string;
  /** CPU threads per evaluation (default 1). node-llama-cpp's own default (4) is 10-30× slower for tiny models on 2 cores. */
  readonly threads?: number;
  /** Tokens of context per sequence (default: the model's training context, at most 2048). */
  readonly contextSize?: number;
  /** Parallel sequences, i.e. requests generated at once in one batched context (default 4). Others queue (FIFO). */
  readonly sequences?: number;
  /**
   * Requests that may wait for a sequence (default 256). Beyond it a request fails at once with a
   * retryable 'rate_limited' (429; the router tries another deployment first) instead of queueing
   * without bound. 0: never queue.
   */
  readonly maxQueue?: number;
  /**
   * Keep each sequence's evaluated tokens after a request, and give a new request the free sequence
   * whose tokens share the longest prefix with its prompt: only the rest of the prompt is evaluated
   * (llama.cpp server's `cache_prompt`). Default true. As there, logits of a cached prefix are not
   * guaranteed bit-for-bit equal to a cold evaluation in one batch.
   */
  readonly promptCache?: boolean;
  /** Tokens evaluated per batch (default: node-llama-cpp's, min(512, contextSize × sequences)). */
  readonly batchSize?: number;
  /** maxTokens when a request gives none (default 256). Always capped by the room left in the context. */
  readonly maxTokens?: number;
  /** Prepended as a system message to chats that have none. */
  readonly systemPrompt?: string;
  /**
   * How chats are rendered (default 'auto': node-llama-cpp matches the model's Jinja template to a
   * built-in wrapper, which takes about a second at load for an unknown template; 'jinjaTemplate' uses
   * the template as is, and is the default for `builtin:` models).
   */
  readonly chatWrapper?: LlamaCppChatWrapperName;
  /** Offload to a GPU when one is available (default false: the prebuilt CPU build, never a compile). */
  readonly gpu?: boolean;
  /** Where `builtin:` models are written (default: `<os tmpdir>/infer-model-providers`). */
  readonly builtinDir?: string;
}

export const LLAMA_CPP_DEFAULTS = {
  threads: 1,
  maxContextSize: 2048,
  sequences: 4,
  maxQueue: 256,
  promptCache: true,
  maxTokens: 256,
  gpu: false,
} as const;

export const llamaCppOptionsSchema: OptionsSchema = {
  type: 'object',
  additionalProperties: false,
  required: ['modelPath'],
  properties: {
    modelPath: { type: 'string', minLength: 1, description: 'GGUF file (relative to the models file) or builtin:tiny-llama' },
    threads: { type: 'integer', minimum: 1, maximum: 256, default: LLAMA_CPP_DEFAULTS.threads },
    contextSize: { type: 'integer', minimum: 16, maximum: 1_048_576 },
    sequences: { type: 'integer', minimum: 1, maximum: 256, default: LLAMA_CPP_DEFAULTS.sequences },
    maxQueue: { type: 'integer', minimum: 0, default: LLAMA_CPP_DEFAULTS.maxQueue },
    promptCache: { type: 'boolean', default: LLAMA_CPP_DEFAULTS.promptCache },
    batchSize: { type: 'integer', minimum: 1, maximum: 65_536 },
    maxTokens: { type: 'integer', minimum: 1, default: LLAMA_CPP_DEFAULTS.maxTokens },
    systemPrompt: { type: 'string' },
    chatWrapper: { type: 'string', enum: [...LLAMA_CPP_CHAT_WRAPPERS] },
    gpu: { type: 'boolean', default: LLAMA_CPP_DEFAULTS.gpu },
    builtinDir: { type: 'string', minLength: 1 },
  },
};
