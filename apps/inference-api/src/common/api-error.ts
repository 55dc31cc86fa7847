/** The OpenAI error body: `{"error":{"message","type","param","code"}}`. */
export interface OpenAIErrorBody {
  error: { message: string; type: string; param: string | null; code: string | null };
}

/** An error the API raises itself (bad request, unknown model, ...), already in OpenAI terms. */
export class ApiError extends Error {
  override readonly name = 'ApiError';
  constructor(
    readonly status: number,
    message: string,
    readonly type: string = errorTypeForStatus(status),
    readonly code: string | null = null,
    readonly param: string | null = null,
    /** Sent as `retry-after` (seconds): an upstream's, passed on (e.g. by another process's leader). */
    readonly retryAfterSeconds?: number,
  ) {
    super(message);
  }

  static invalidRequest(message: string, param: string | null = null, code: string | null = null): ApiError {
    return new ApiError(400, message, 'invalid_request_error', code, param);
  }

  static modelNotFound(model: string): ApiError {
    return new ApiError(
      404,
      `The model '${model}' does not exist or you do not have access to it.`,
      'invalid_request_error',
      'model_not_found',
      'model',
    );
  }
}

export function errorTypeForStatus(status: number): string {
  switch (status) {
    case 401:
      return 'authentication_error';
    case 403:
      return 'permission_error';
    case 404:
      return 'invalid_request_error';
    case 429:
      return 'rate_limit_error';
    case 502:
      return 'upstream_error';
    case 503:
      return 'service_unavailable';
    case 504:
      return 'timeout_error';
    default:
      return status >= 500 ? 'server_error' : 'invalid_request_error';
  }
}

export function errorBody(status: number, message: string, type?: string, code: string | null = null, param: string | null = null): OpenAIErrorBody {
  return { error: { message, type: type ?? errorTypeForStatus(status), param, code } };
}
