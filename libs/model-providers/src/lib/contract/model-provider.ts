/**
 * The model-provider contract, version 1.
 *
 * A provider is one deployment of one model: an upstream server, a loaded GGUF file, ...
 * It is created by its factory (see ../registry) from the options in the models file and
 * is asked to generate text for already-validated, normalised requests. It knows nothing
 * about HTTP on the client side: the API layer formats JSON bodies and SSE frames.
 *
 * Keep this file small. Anything added here must be implemented by every provider.
 */

export const MODEL_PROVIDER_SPEC_VERSION = 'v1' as const;
export type ModelProviderSpecVersion = typeof MODEL_PROVIDER_SPEC_VERSION;

export type ChatRole = 'system' | 'developer' | 'user' | 'assistant' | 'tool';

export interface ChatMessage {
  readonly role: ChatRole;
  /**
   * Plain text. Array content parts of type "text" are joined by the API layer before they get here.
   * An assistant message that only called tools has `''`.
   */
  readonly content: string;
  readonly name?: string;
  /** Assistant messages: the tool calls the model made (sent back as conversation history). */
  readonly toolCalls?: readonly ToolCall[];
  /** Tool messages: the id of the call this message answers. */
  readonly toolCallId?: string;
}

/**
 * A call of one of the request's tools, as the model produced it. `arguments` is the JSON text the
 * model generated (not validated: it may not parse, as with OpenAI).
 */
export interface ToolCall {
  readonly id: string;
  readonly name: string;
  readonly arguments: string;
}

/** A function the model may call (OpenAI's `tools[].function`). */
export interface ToolDefinition {
  readonly name: string;
  readonly description?: string;
  /** JSON Schema of the arguments object. */
  readonly parameters?: Readonly<Record<string, unknown>>;
  readonly strict?: boolean;
}

/** Whether the model may (`auto`), must (`required`, or the named function) or must not (`none`) call tools. */
export type ToolChoice = 'auto' | 'none' | 'required' | { readonly name: string };

/** Sampling and length parameters shared by chat and completion requests. All optional. */
export interface GenerationParams {
  /** Upper bound on generated tokens. Undefined: the provider's default. */
  readonly maxTokens?: number;
  readonly temperature?: number;
  readonly topP?: number;
  readonly seed?: number;
  readonly stop?: readonly string[];
  readonly presencePenalty?: number;
  readonly frequencyPenalty?: number;
  /**
   * Log probabilities wanted for the generated tokens: how many most likely alternatives per
   * position (0 to 20; 0: the chosen token's own only). Undefined: none. Only sent to providers
   * whose `capabilities.logprobs` is true (the API refuses such requests for other models).
   */
  readonly logprobs?: number;
  /**
   * Parameters the API layer does not interpret but that an upstream might (OpenAI fields such as
   * `logit_bias`, `user`, `response_format`). Providers that speak the OpenAI protocol pass them on;
   * others ignore them.
   */
  readonly extra?: Readonly<Record<string, unknown>>;
}

export interface ChatRequest extends GenerationParams {
  readonly messages: readonly ChatMessage[];
  /**
   * Functions the model may call. Only sent to providers whose `capabilities.tools` is true (the
   * API refuses such requests for other models); absent when the client sent none.
   */
  readonly tools?: readonly ToolDefinition[];
  readonly toolChoice?: ToolChoice;
  /** false: at most one tool call per answer. */
  readonly parallelToolCalls?: boolean;
}

export interface CompletionRequest extends GenerationParams {
  readonly prompt: string;
}

export type FinishReason = 'stop' | 'length' | 'content_filter' | 'tool_calls';

export interface TokenUsage {
  readonly promptTokens: number;
  readonly completionTokens: number;
  /**
   * Of `promptTokens`, how many were served from a prompt (prefix) cache instead of being evaluated
   * (OpenAI's `usage.prompt_tokens_details.cached_tokens`). Absent when the provider does not know.
   */
  readonly cachedPromptTokens?: number;
}

export interface GenerationResult {
  /** The generated text; `''` when the model only called tools. */
  readonly text: string;
  readonly finishReason: FinishReason;
  readonly usage: TokenUsage;
  /** The tool calls of the answer (chat with `tools` only); absent or empty when there are none. */
  readonly toolCalls?: readonly ToolCall[];
  /**
   * One entry per generated token, in order, when the request asked for `logprobs` (absent
   * otherwise, or when the model gave none).
   */
  readonly logprobs?: readonly TokenLogprob[];
  /**
   * The model's refusal (OpenAI's `message.refusal`: it declined, e.g. under a JSON schema); absent
   * when it did not refuse. `text` is then usually ''.
   */
  readonly refusal?: string;
}

/** A token and its log probability (one of OpenAI's `top_logprobs` entries). */
export interface TopLogprob {
  readonly token: string;
  /** Natural log of the token's probability (<= 0); null where there is none (the first token of an echoed prompt). */
  readonly logprob: number | null;
  /** The token's UTF-8 bytes, when the provider gives them (a token can hold part of a character). */
  readonly bytes?: readonly number[];
}

/** A generated token with its log probability and the most likely tokens at its position. */
export interface TokenLogprob extends TopLogprob {
  /** At most the requested number of alternatives, most likely first. */
  readonly top: readonly TopLogprob[];
}

/**
 * A piece of tool call number `index` (0, 1, ... in the order the calls start). The first piece of
 * each call carries its `id` and `name`; the `arguments` of its pieces, joined in order, are the
 * call's arguments.
 */
export interface ToolCallPart {
  readonly type: 'tool_call';
  readonly index: number;
  readonly id?: string;
  readonly name?: string;
  readonly arguments: string;
}

/**
 * What a stream yields: zero or more `delta`, `refusal` and `tool_call` parts, then exactly one `finish` part,
 * then the iterator ends. Errors are thrown from the iterator (as ModelProviderError).
 */
export type StreamPart =
  /** `logprobs`: the entries of the tokens in `text` (requests with `logprobs` only); `text` may then be '' (a token that is part of a character). */
  | { readonly type: 'delta'; readonly text: string; readonly logprobs?: readonly TokenLogprob[] }
  | ToolCallPart
  /** A piece of the model's refusal (chat only; see GenerationResult.refusal). */
  | { readonly type: 'refusal'; readonly text: string }
  | { readonly type: 'finish'; readonly finishReason: FinishReason; readonly usage: TokenUsage };

/** Embeddings of one or more texts. */
export interface EmbeddingRequest {
  /** The texts, in order (each non-empty). */
  readonly input: readonly string[];
  /** The vector size the client asked for, if any. A provider that cannot give it throws 'invalid_request' (param `dimensions`). */
  readonly dimensions?: number;
  /** OpenAI fields the API does not interpret (e.g. `user`); providers that speak the OpenAI protocol pass them on. */
  readonly extra?: Readonly<Record<string, unknown>>;
}

export interface EmbeddingResult {
  /** One vector per input, in input order, all of the same length. */
  readonly embeddings: readonly (readonly number[])[];
  readonly usage: { readonly promptTokens: number };
}

export interface CallOptions {
  /** Aborted when the client goes away or a deadline passes: stop generating, release resources. */
  readonly signal?: AbortSignal;
}

export interface ProviderCapabilities {
  readonly chat: boolean;
  readonly completion: boolean;
  readonly streaming: boolean;
  readonly embeddings: boolean;
  /**
   * Tool (function) calling: the provider receives `tools`/`toolChoice` and history messages with
   * tool calls, and answers with `toolCalls` / `tool_call` parts. Absent means false.
   */
  readonly tools?: boolean;
  /** Log probabilities: the provider honours `logprobs` and answers `logprobs` / delta `logprobs`. Absent means false. */
  readonly logprobs?: boolean;
}

export interface ProviderHealth {
  readonly healthy: boolean;
  /** Human-readable detail for /health endpoints (never secrets). */
  readonly detail?: string;
}

export interface ModelProvider {
  readonly specificationVersion: ModelProviderSpecVersion;
  /** The registry kind this provider was created from, e.g. "openai-compatible". */
  readonly kind: string;
  /** A label for logs and health output, e.g. "openai-compatible(http://127.0.0.1:8000/v1, llama3)". */
  readonly label: string;
  readonly capabilities: ProviderCapabilities;

  /** Called once before the first request (load a model, warm a pool). May be omitted. */
  init?(): Promise<void>;

  chat(request: ChatRequest, options?: CallOptions): Promise<GenerationResult>;
  streamChat(request: ChatRequest, options?: CallOptions): AsyncIterable<StreamPart>;

  complete(request: CompletionRequest, options?: CallOptions): Promise<GenerationResult>;
  streamComplete(request: CompletionRequest, options?: CallOptions): AsyncIterable<StreamPart>;

  /** Embeddings. Implemented exactly when `capabilities.embeddings` is true. */
  embed?(request: EmbeddingRequest, options?: CallOptions): Promise<EmbeddingResult>;

  /** Cheap readiness check (model loaded, upstream reachable or recently healthy). */
  health(): Promise<ProviderHealth>;

  /** Release everything (sockets, model memory). Called once at shutdown. */
  close(): Promise<void>;
}
