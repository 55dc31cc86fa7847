/**
 * Maps what can go wrong talking to an OpenAI-compatible upstream to ModelProviderError:
 * transport errors (undici / node:net), HTTP error statuses with their bodies, and bad payloads.
 */
import { ModelProviderError, abortedError } from '../../contract/errors.js';

const UNAVAILABLE_CODES = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ENOTFOUND',
  'EAI_AGAIN',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'EHOSTDOWN',
  'ENETDOWN',
  'EPIPE',
  'ECONNABORTED',
  'UND_ERR_SOCKET',
  'UND_ERR_CLOSED',
  'UND_ERR_DESTROYED',
  'UND_ERR_RES_CONTENT_LENGTH_MISMATCH',
]);

const TIMEOUT_CODES = new Set([
  'UND_ERR_CONNECT_TIMEOUT',
  'UND_ERR_HEADERS_TIMEOUT',
  'UND_ERR_BODY_TIMEOUT',
  'ETIMEDOUT',
  'ESOCKETTIMEDOUT',
]);

function codeOf(error: unknown): string | undefined {
  if (error === null || typeof error !== 'object') return undefined;
  const code = (error as { code?: unknown }).code;
  if (typeof code === 'string') return code;
  // Happy-eyeballs connects fail with an AggregateError of per-address errors.
  if (error instanceof AggregateError) {
    for (const inner of error.errors) {
      const innerCode = codeOf(inner);
      if (innerCode) return innerCode;
    }
  }
  return undefined;
}

const TIMEOUT_WHAT: Readonly<Record<string, string>> = {
  UND_ERR_CONNECT_TIMEOUT: 'connecting',
  UND_ERR_HEADERS_TIMEOUT: 'waiting for the response headers',
  UND_ERR_BODY_TIMEOUT: 'waiting for the next body chunk',
};

/**
 * Maps a thrown transport error. When `signal` is aborted, whatever was thrown becomes 'aborted'
 * (undici reports an abort as a socket/abort error of its own).
 */
export function mapTransportError(error: unknown, label: string, signal?: AbortSignal): ModelProviderError {
  if (signal?.aborted) return error instanceof ModelProviderError && error.code === 'aborted' ? error : abortedError(error);
  if (error instanceof ModelProviderError) return error;
  const code = codeOf(error);
  const detail = error instanceof Error ? error.message : String(error);
  if (code !== undefined && TIMEOUT_CODES.has(code)) {
    return new ModelProviderError(`${label}: timed out ${TIMEOUT_WHAT[code] ?? ''} (${detail})`.replace('  ', ' '), {
      code: 'upstream_timeout',
      cause: error,
    });
  }
  if (code !== undefined && UNAVAILABLE_CODES.has(code)) {
    return new ModelProviderError(`${label}: upstream unavailable (${code}: ${detail})`, {
      code: 'upstream_unavailable',
      cause: error,
    });
  }
  if (error instanceof Error && (error.name === 'AbortError' || code === 'UND_ERR_ABORTED')) {
    // An abort we did not ask for (e.g. the pool was destroyed by close()).
    return new ModelProviderError(`${label}: the upstream call was cancelled (${detail})`, {
      code: 'upstream_unavailable',
      cause: error,
    });
  }
  return new ModelProviderError(`${label}: ${detail}`, { code: 'upstream_error', cause: error });
}

interface UpstreamErrorInfo {
  readonly message: string | undefined;
  readonly param: string | undefined;
  readonly code: string | undefined;
  /** The message came from a JSON error body (not raw text or HTML): what may be passed on to a client. */
  readonly structured?: boolean;
}

/** Extracts message/param/code from the error bodies OpenAI, vLLM, llama.cpp, TGI and Ollama send. */
export function parseUpstreamErrorBody(text: string): UpstreamErrorInfo {
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    const trimmed = text.trim();
    return { message: trimmed ? truncate(trimmed) : undefined, param: undefined, code: undefined };
  }
  const str = (value: unknown): string | undefined =>
    typeof value === 'string' && value.length > 0 ? value : typeof value === 'number' ? String(value) : undefined;
  if (parsed !== null && typeof parsed === 'object') {
    const root = parsed as Record<string, unknown>;
    const error = root['error'];
    if (error !== null && typeof error === 'object' && !Array.isArray(error)) {
      const e = error as Record<string, unknown>;
      return { message: str(e['message']), param: str(e['param']), code: str(e['code']) ?? str(e['type']), structured: true };
    }
    if (typeof error === 'string') return { message: error, param: undefined, code: str(root['error_type']), structured: true };
    const detail = root['detail'];
    if (typeof detail === 'string') return { message: detail, param: undefined, code: undefined, structured: true };
    if (Array.isArray(detail)) {
      // FastAPI validation errors: [{ loc: [...], msg }]
      const first = detail[0] as Record<string, unknown> | undefined;
      const loc = Array.isArray(first?.['loc']) ? (first['loc'] as unknown[]).filter((x) => x !== 'body').join('.') : undefined;
      return { message: str(first?.['msg']) ?? truncate(text), param: loc || undefined, code: undefined, structured: first?.['msg'] !== undefined };
    }
    return { message: str(root['message']) ?? truncate(text), param: str(root['param']), code: str(root['code']), structured: typeof root['message'] === 'string' };
  }
  return { message: truncate(text), param: undefined, code: undefined };
}

function truncate(text: string, max = 500): string {
  return text.length > max ? `${text.slice(0, max)}...` : text;
}

const CONTEXT_LENGTH = /context[_ ]length|maximum context|context window|too many tokens|exceeds? the (model'?s? )?(maximum|max)/i;

/** Longest `retry-after` passed on (an hour): a larger one is more likely a mistake than a plan. */
const MAX_RETRY_AFTER_SECONDS = 3_600;

/** An HTTP `retry-after` (delay-seconds or an HTTP date) in whole seconds from now; undefined when absent or unreadable. */
export function retryAfterSeconds(value: string | string[] | undefined, now = Date.now()): number | undefined {
  const text = (Array.isArray(value) ? value[0] : value)?.trim();
  if (text === undefined || text === '') return undefined;
  // delay-seconds (a fraction, which some servers send, rounded up), or an HTTP date (it has letters: "Wed, 21 Oct …").
  let seconds: number;
  if (/^\d+(\.\d+)?$/.test(text)) seconds = Math.ceil(Number(text));
  else if (/[a-z]/i.test(text)) seconds = Math.ceil((Date.parse(text) - now) / 1000);
  else return undefined;
  if (!Number.isFinite(seconds)) return undefined;
  return Math.min(Math.max(seconds, 0), MAX_RETRY_AFTER_SECONDS);
}

/**
 * Maps an upstream HTTP error status and body. `message` keeps everything for the logs; `publicMessage` is what a client sees.
 * `retryAfter`: the upstream's `retry-after` header, kept for 429 and 503.
 */
export function mapHttpError(status: number, bodyText: string, label: string, retryAfter?: string | string[]): ModelProviderError {
  const info = parseUpstreamErrorBody(bodyText);
  const said = info.message ?? `HTTP ${status}`;
  // Only a message from a JSON error body is passed on (shortened): never raw text, HTML or tracebacks.
  const relayed = info.structured === true && info.message !== undefined ? truncate(info.message, 300) : undefined;
  const wait = status === 429 || status === 503 ? retryAfterSeconds(retryAfter) : undefined;
  const base = { upstreamStatus: status, ...(info.param !== undefined && { param: info.param }), ...(wait !== undefined && { retryAfterSeconds: wait }) };
  if (status === 401 || status === 403) {
    return new ModelProviderError(`${label}: upstream rejected credentials (${status}): ${said}`, {
      ...base,
      code: 'upstream_error',
      isRetryable: false,
      publicMessage: `The model server refused this gateway's credentials (HTTP ${status}).`,
    });
  }
  if (status === 429) {
    return new ModelProviderError(`${label}: upstream rate limit (429): ${said}`, {
      ...base,
      code: 'rate_limited',
      publicMessage: relayed ?? 'The model server is rate limiting requests: try again later.',
    });
  }
  if (status === 408) {
    return new ModelProviderError(`${label}: upstream timed out (408): ${said}`, { ...base, code: 'upstream_timeout' });
  }
  if (status >= 500) {
    return new ModelProviderError(`${label}: upstream error (${status}): ${said}`, {
      ...base,
      code: 'upstream_error',
      isRetryable: true,
      publicMessage: `The model server returned an error (HTTP ${status})${relayed === undefined ? '.' : `: ${relayed}`}`,
    });
  }
  if (status >= 400) {
    const contextLength = info.code === 'context_length_exceeded' || CONTEXT_LENGTH.test(said);
    return new ModelProviderError(said, {
      ...base,
      code: contextLength ? 'context_length_exceeded' : 'invalid_request',
      isRetryable: false,
      ...(relayed === undefined && { publicMessage: `The model server refused the request (HTTP ${status}).` }),
    });
  }
  return new ModelProviderError(`${label}: unexpected upstream status ${status}`, { ...base, code: 'upstream_error' });
}

/** A body that could not be understood (malformed JSON, missing choices). */
export function malformedError(label: string, what: string, cause?: unknown): ModelProviderError {
  return new ModelProviderError(`${label}: malformed upstream response (${what})`, { code: 'upstream_error', cause });
}

/** Parses an upstream JSON object (`what`: "the body", "a stream event"); anything else is a malformed-response error. */
export function parseJsonObject(text: string, label: string, what: string): Record<string, unknown> {
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (error) {
    throw malformedError(label, `${what} is not JSON`, error);
  }
  if (parsed === null || typeof parsed !== 'object') throw malformedError(label, `${what} is not an object`);
  return parsed as Record<string, unknown>;
}
