/**
 * Typed provider errors. The API maps `code` to an HTTP status and an OpenAI error type at the
 * edge; the router uses `isRetryable` to decide whether another deployment may be tried.
 */
export type ModelProviderErrorCode =
  /** The request cannot be served as asked (bad parameter for this model). 400 */
  | 'invalid_request'
  /** Prompt plus max tokens do not fit the model's context. 400 */
  | 'context_length_exceeded'
  /** The provider cannot do this (e.g. completions on a chat-only upstream). 400 */
  | 'not_supported'
  /** The upstream said 429. */
  | 'rate_limited'
  /** The upstream answered with an error (5xx, malformed body, or refused our credentials). 502 */
  | 'upstream_error'
  /** The upstream could not be reached (connection refused/reset, DNS). 502, retryable */
  | 'upstream_unavailable'
  /** The upstream did not answer in time. 504 */
  | 'upstream_timeout'
  /** The caller aborted (client disconnected). Never retried, never shown to anyone. */
  | 'aborted'
  /** Every deployment of the model is cooling down or failed. 503 */
  | 'no_deployment_available'
  /** A bug or an unexpected state inside the provider. 500 */
  | 'internal';

export interface ModelProviderErrorOptions {
  readonly code: ModelProviderErrorCode;
  readonly isRetryable?: boolean;
  /** The upstream HTTP status, when there was one. */
  readonly upstreamStatus?: number;
  /** The request parameter at fault, for OpenAI's `param`. */
  readonly param?: string;
  /**
   * What a client may be told, when `message` (for the logs) names internals: upstream addresses,
   * raw upstream bodies. Without it the API shows `message` for the 4xx codes and `rate_limited`,
   * and a generic text for the other 5xx codes.
   */
  readonly publicMessage?: string;
  /** The upstream's `retry-after` (429, 503) in whole seconds: passed on to the client. */
  readonly retryAfterSeconds?: number;
  readonly cause?: unknown;
}

const RETRYABLE_BY_DEFAULT: ReadonlySet<ModelProviderErrorCode> = new Set([
  'rate_limited',
  'upstream_unavailable',
  'upstream_timeout',
  'upstream_error',
]);

export class ModelProviderError extends Error {
  override readonly name = 'ModelProviderError';
  readonly code: ModelProviderErrorCode;
  readonly isRetryable: boolean;
  readonly upstreamStatus: number | undefined;
  readonly param: string | undefined;
  readonly publicMessage: string | undefined;
  readonly retryAfterSeconds: number | undefined;

  constructor(message: string, options: ModelProviderErrorOptions) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.code = options.code;
    this.isRetryable = options.isRetryable ?? RETRYABLE_BY_DEFAULT.has(options.code);
    this.upstreamStatus = options.upstreamStatus;
    this.param = options.param;
    this.publicMessage = options.publicMessage;
    this.retryAfterSeconds = options.retryAfterSeconds;
  }

  static isInstance(error: unknown): error is ModelProviderError {
    return error instanceof ModelProviderError;
  }
}

/** True when `error` came from an aborted signal (ours or a DOMException from fetch/undici). */
export function isAbortError(error: unknown): boolean {
  if (error instanceof ModelProviderError) return error.code === 'aborted';
  return error instanceof Error && (error.name === 'AbortError' || (error as { code?: unknown }).code === 'ABORT_ERR');
}

export function abortedError(cause?: unknown): ModelProviderError {
  return new ModelProviderError('The request was aborted', { code: 'aborted', isRetryable: false, cause });
}

/** Thrown by option parsers and the models-file loader. The message names the offending path. */
export class ProviderConfigError extends Error {
  override readonly name = 'ProviderConfigError';
}
