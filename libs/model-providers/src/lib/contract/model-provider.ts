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
  /** Plain text. Array content parts of type "text" are joined by the API layer before they get here. */
  readonly content: string;
  readonly name?: string;
}

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
   * Parameters the API layer does not interpret but that an upstream might (OpenAI fields such as
   * `logit_bias`, `user`, `response_format`). Providers that speak the OpenAI protocol pass them on;
   * others ignore them.
   */
  readonly extra?: Readonly<Record<string, unknown>>;
}

export interface ChatRequest extends GenerationParams {
  readonly messages: readonly ChatMessage[];
}

export interface CompletionRequest extends GenerationParams {
  readonly prompt: string;
}

export type FinishReason = 'stop' | 'length' | 'content_filter' | 'tool_calls';

export interface TokenUsage {
  readonly promptTokens: number;
  readonly completionTokens: number;
}

export interface GenerationResult {
  readonly text: string;
  readonly finishReason: FinishReason;
  readonly usage: TokenUsage;
}

/**
 * What a stream yields: zero or more `delta` parts, then exactly one `finish` part, then the
 * iterator ends. Errors are thrown from the iterator (as ModelProviderError).
 */
export type StreamPart =
  | { readonly type: 'delta'; readonly text: string }
  | { readonly type: 'finish'; readonly finishReason: FinishReason; readonly usage: TokenUsage };

export interface CallOptions {
  /** Aborted when the client goes away or a deadline passes: stop generating, release resources. */
  readonly signal?: AbortSignal;
}

export interface ProviderCapabilities {
  readonly chat: boolean;
  readonly completion: boolean;
  readonly streaming: boolean;
  readonly embeddings: boolean;
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

  /** Cheap readiness check (model loaded, upstream reachable or recently healthy). */
  health(): Promise<ProviderHealth>;

  /** Release everything (sockets, model memory). Called once at shutdown. */
  close(): Promise<void>;
}
