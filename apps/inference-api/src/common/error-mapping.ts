import { HttpException } from '@nestjs/common';
import { ModelProviderError, type ModelProviderErrorCode } from '@infer/model-providers';
import { ApiError, errorBody, type OpenAIErrorBody } from './api-error.js';

export interface MappedError {
  readonly status: number;
  readonly body: OpenAIErrorBody;
  /** True when this is our bug or an unknown failure: log it with its stack. */
  readonly unexpected: boolean;
}

/** The `retry-after` (seconds) an error asks a client to wait: an upstream's, carried by the error. */
export function retryAfterOf(error: unknown): number | undefined {
  if (error instanceof ModelProviderError || error instanceof ApiError) return error.retryAfterSeconds;
  return undefined;
}

/** HTTP status for each provider error code. The switch fails to compile when a code is added. */
export function statusForProviderError(code: ModelProviderErrorCode): number {
  switch (code) {
    case 'invalid_request':
    case 'context_length_exceeded':
    case 'not_supported':
      return 400;
    case 'rate_limited':
      return 429;
    case 'upstream_error':
    case 'upstream_unavailable':
      return 502;
    case 'no_deployment_available':
      return 503;
    case 'upstream_timeout':
      return 504;
    case 'aborted':
      return 499;
    case 'internal':
      return 500;
    default: {
      const unreachable: never = code;
      return unreachable;
    }
  }
}

/** One Ajv error as Fastify passes it on (`error.validation`). */
interface SchemaError {
  instancePath?: string;
  schemaPath?: string;
  keyword?: string;
  message?: string;
  params?: Record<string, unknown>;
}

interface FastifyLikeError {
  statusCode?: number;
  code?: string;
  validation?: ReadonlyArray<SchemaError>;
  validationContext?: string;
  message: string;
}

/**
 * Maps anything thrown while serving a request to an OpenAI-shaped error. Never exposes stacks or
 * internal messages of unexpected errors.
 */
export function mapError(error: unknown, requestId?: string): MappedError {
  if (error instanceof ApiError) {
    return { status: error.status, body: errorBody(error.status, error.message, error.type, error.code, error.param), unexpected: false };
  }
  if (error instanceof ModelProviderError) {
    const status = statusForProviderError(error.code);
    // OpenAI's codes where ours differ (the SDKs and clients key on `rate_limit_exceeded`).
    const code = error.code === 'internal' ? 'internal_error' : error.code === 'rate_limited' ? 'rate_limit_exceeded' : error.code;
    return { status, body: errorBody(status, providerMessage(error, requestId), undefined, code, error.param ?? null), unexpected: error.code === 'internal' };
  }
  if (error instanceof HttpException) {
    // Nest wraps Fastify's own 4xx errors (body too large, bad JSON, ...) and keeps them as the cause.
    const cause = (error as { cause?: unknown }).cause;
    if (cause && typeof cause === 'object' && typeof (cause as FastifyLikeError).statusCode === 'number') return mapError(cause, requestId);
    const status = error.getStatus();
    return { status, body: errorBody(status, status >= 500 ? internalMessage(requestId) : error.message, undefined, status === 404 ? 'not_found' : null), unexpected: status >= 500 };
  }
  const fastifyError = error as FastifyLikeError | null;
  if (fastifyError && typeof fastifyError === 'object' && Array.isArray(fastifyError.validation)) {
    return { status: 400, body: validationBody(fastifyError), unexpected: false };
  }
  if (fastifyError && typeof fastifyError.statusCode === 'number' && fastifyError.statusCode >= 400 && fastifyError.statusCode < 500) {
    const status = fastifyError.statusCode;
    const code =
      status === 413
        ? 'request_too_large'
        : status === 415
          ? 'unsupported_media_type'
          : fastifyError.code === 'FST_ERR_CTP_INVALID_JSON_BODY' || /JSON/.test(fastifyError.message)
            ? 'invalid_json'
            : null;
    const message =
      status === 413 ? 'Request body is too large' : status === 415 ? 'Unsupported Content-Type: send the body as application/json.' : fastifyError.message;
    return { status, body: errorBody(status, message, undefined, code), unexpected: false };
  }
  return { status: 500, body: errorBody(500, internalMessage(requestId), 'server_error', 'internal_error'), unexpected: true };
}

/**
 * What a client is told of a provider error: its `publicMessage`, else its message for the codes
 * whose messages are about the request (4xx, 429, 503), else a generic text with the request id.
 * Provider messages for upstream failures name internals (the upstream's address, raw upstream
 * bodies): they go to the logs only.
 */
function providerMessage(error: ModelProviderError, requestId: string | undefined): string {
  if (error.code === 'internal') return internalMessage(requestId);
  if (error.publicMessage !== undefined) return error.publicMessage;
  const id = requestId === undefined ? '' : ` (request id ${requestId})`;
  switch (error.code) {
    case 'upstream_unavailable':
      return `The model server is unavailable; try again later${id}.`;
    case 'upstream_timeout':
      return `The model server did not answer in time${id}.`;
    case 'upstream_error':
      return `The model server failed to answer this request${id}.`;
    default:
      return error.message;
  }
}

function internalMessage(requestId: string | undefined): string {
  return requestId ? `The server had an error while processing your request (request id ${requestId}).` : 'The server had an error while processing your request.';
}

function validationBody(error: FastifyLikeError): OpenAIErrorBody {
  const chosen = decisiveError(error.validation ?? []);
  const params = chosen?.params ?? {};
  let param = (chosen?.instancePath ?? '').replace(/^\//, '').replace(/\/(\d+)/g, '[$1]').replaceAll('/', '.');
  if (typeof params['missingProperty'] === 'string') param = param ? `${param}.${params['missingProperty']}` : params['missingProperty'];
  if (typeof params['additionalProperty'] === 'string') param = param ? `${param}.${params['additionalProperty']}` : params['additionalProperty'];
  const where = error.validationContext === 'querystring' ? 'query parameter' : error.validationContext === 'params' ? 'path parameter' : 'body';
  let detail = chosen?.message ?? 'is invalid';
  if (Array.isArray(params['allowedValues'])) detail += ` (${params['allowedValues'].join(', ')})`;
  const message = param ? `Invalid ${where} '${param}': ${detail}` : `Invalid ${where}: ${detail}`;
  return errorBody(400, message, 'invalid_request_error', 'invalid_request', param || null);
}

/**
 * The error worth reporting. Ajv lists the errors of every `oneOf`/`anyOf` branch before its own
 * "must match exactly one schema in oneOf", so the first one belongs to the first branch whatever
 * the value was: `"prompt": ["a", "b"]` would read "must be string". A branch that failed on
 * anything but the value's type at that place is the one the value was meant for, so its error is
 * reported ("must NOT have more than 1 items"). If every branch failed on the type, the message
 * lists the types ("must be string or array").
 */
function decisiveError(errors: ReadonlyArray<SchemaError>): SchemaError | undefined {
  let alternative: SchemaError | undefined;
  for (let i = errors.length - 1; i >= 0; i--) {
    const e = errors[i] as SchemaError;
    if ((e.keyword === 'oneOf' || e.keyword === 'anyOf') && e.schemaPath !== undefined) {
      alternative = e;
      break;
    }
  }
  if (!alternative) return errors[0];
  const prefix = `${alternative.schemaPath}/`;
  const at = alternative.instancePath ?? '';
  const branches = errors.filter((e) => e !== alternative && e.schemaPath?.startsWith(prefix) === true);
  const wrongType = (e: SchemaError) => e.keyword === 'type' && (e.instancePath ?? '') === at;
  const meant = branches.filter((e) => !wrongType(e));
  if (meant.length > 0) return decisiveError(meant);
  const types = [...new Set(branches.map((e) => e.params?.['type']).filter((t): t is string => typeof t === 'string'))];
  if (types.length === 0) return alternative;
  return { instancePath: at, keyword: 'type', message: `must be ${types.join(' or ')}`, params: {} };
}
