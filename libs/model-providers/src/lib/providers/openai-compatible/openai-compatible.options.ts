import { ProviderConfigError } from '../../contract/errors.js';
import type { OptionsSchema } from '../../registry/provider-definition.js';

export const OPENAI_COMPATIBLE_KIND = 'openai-compatible' as const;

/** Options of one `openai-compatible` deployment (the models-file entry without `provider`/`weight`/`priority`). */
export interface OpenAICompatibleProviderOptions {
  /** Base URL of the OpenAI-compatible API, including its version path, e.g. http://127.0.0.1:8000/v1. */
  readonly baseUrl: string;
  /** The upstream's model id (sent as `model`; the public model name may differ). */
  readonly model: string;
  /** API key sent as `Authorization: Bearer <key>`. Prefer `apiKeyEnv` in files. */
  readonly apiKey?: string;
  /** Name of the environment variable holding the API key (read from the provider context's env). */
  readonly apiKeyEnv?: string;
  /** Extra request headers (e.g. `OpenAI-Organization`). */
  readonly headers?: Readonly<Record<string, string>>;
  /** TCP/TLS connect timeout, ms (default 5 000). */
  readonly connectTimeoutMs?: number;
  /** Time to the response headers, ms (default 60 000). For non-stream calls this covers the whole generation. */
  readonly timeoutMs?: number;
  /** Longest silence between two body chunks, ms (default 60 000). */
  readonly idleTimeoutMs?: number;
  /** Keep-alive connections in the pool, i.e. concurrent upstream calls (default 128). */
  readonly connections?: number;
  /** Whether the upstream serves `/completions` (default true); false makes complete() throw 'not_supported'. */
  readonly supportsCompletions?: boolean;
  /**
   * Whether the upstream does tool (function) calling (default true). false: chat requests with
   * `tools` are refused by the API (400 `unsupported_parameter`) instead of reaching the upstream.
   */
  readonly supportsTools?: boolean;
  /**
   * Whether the upstream returns log probabilities (default true): chat `logprobs`/`top_logprobs`
   * and the legacy completions `logprobs`. false: requests asking for logprobs are refused by the
   * API (400 `unsupported_parameter`) instead of reaching the upstream.
   */
  readonly supportsLogprobs?: boolean;
  /** Whether the upstream serves `/embeddings` (default true); false makes POST /v1/embeddings answer 400 for this model. */
  readonly supportsEmbeddings?: boolean;
  /**
   * The chat field the length bound is sent in (default `max_tokens`, which vLLM, llama.cpp server,
   * Ollama and TGI read). OpenAI's reasoning models (o-series, gpt-5) refuse `max_tokens` and need
   * `max_completion_tokens`. Text completions always send `max_tokens`.
   */
  readonly maxTokensField?: 'max_tokens' | 'max_completion_tokens';
  /**
   * Largest upstream answer read, bytes (default 64 MiB): a JSON body, or one line of a stream.
   * Beyond it the call fails with 'upstream_error' and the connection is closed, instead of the
   * process holding whatever a broken upstream sends.
   */
  readonly maxResponseBytes?: number;
  /** How long a health() result is reused, ms (default 5 000). */
  readonly healthCacheMs?: number;
  /** Timeout of the health() probe (GET {baseUrl}/models), ms (default 2 000). */
  readonly healthTimeoutMs?: number;
}

/** Options with every default applied and the API key resolved. */
export interface ResolvedOpenAICompatibleOptions {
  readonly baseUrl: string;
  readonly origin: string;
  /** Path prefix of the API, without a trailing slash, e.g. "/v1". */
  readonly basePath: string;
  readonly model: string;
  readonly apiKey: string | undefined;
  readonly headers: Readonly<Record<string, string>>;
  readonly connectTimeoutMs: number;
  readonly timeoutMs: number;
  readonly idleTimeoutMs: number;
  readonly connections: number;
  readonly supportsCompletions: boolean;
  readonly supportsTools: boolean;
  readonly supportsLogprobs: boolean;
  readonly supportsEmbeddings: boolean;
  readonly maxTokensField: 'max_tokens' | 'max_completion_tokens';
  readonly maxResponseBytes: number;
  readonly healthCacheMs: number;
  readonly healthTimeoutMs: number;
}

const positiveInteger = (description: string, defaultValue: number): Record<string, unknown> => ({
  type: 'integer',
  minimum: 1,
  default: defaultValue,
  description,
});

/** JSON Schema (draft-07) of OpenAICompatibleProviderOptions, validated by the registry with Ajv. */
export const openAICompatibleOptionsSchema: OptionsSchema = {
  type: 'object',
  additionalProperties: false,
  required: ['baseUrl', 'model'],
  properties: {
    baseUrl: {
      type: 'string',
      pattern: '^https?://[^\\s]+$',
      description: 'Base URL including the version path, e.g. http://127.0.0.1:8000/v1',
    },
    model: { type: 'string', minLength: 1, description: "The upstream's model id" },
    apiKey: { type: 'string', minLength: 1, description: 'API key (prefer apiKeyEnv)' },
    apiKeyEnv: {
      type: 'string',
      pattern: '^[A-Za-z_][A-Za-z0-9_]*$',
      description: 'Environment variable holding the API key',
    },
    headers: { type: 'object', additionalProperties: { type: 'string' }, description: 'Extra request headers' },
    connectTimeoutMs: positiveInteger('Connect timeout, ms', 5_000),
    timeoutMs: positiveInteger('Time to the response headers, ms', 60_000),
    idleTimeoutMs: positiveInteger('Longest silence between body chunks, ms', 60_000),
    connections: positiveInteger('Keep-alive connections in the pool', 128),
    supportsCompletions: { type: 'boolean', default: true, description: 'The upstream serves /completions' },
    supportsTools: { type: 'boolean', default: true, description: 'The upstream does tool (function) calling' },
    supportsLogprobs: { type: 'boolean', default: true, description: 'The upstream returns log probabilities (logprobs)' },
    supportsEmbeddings: { type: 'boolean', default: true, description: 'The upstream serves /embeddings' },
    maxTokensField: {
      type: 'string',
      enum: ['max_tokens', 'max_completion_tokens'],
      default: 'max_tokens',
      description: 'The chat field of the length bound (max_completion_tokens for OpenAI reasoning models)',
    },
    maxResponseBytes: positiveInteger('Largest upstream answer read (a JSON body, or one stream line), bytes', 64 * 1024 * 1024),
    healthCacheMs: { type: 'integer', minimum: 0, default: 5_000, description: 'How long a health result is reused, ms' },
    healthTimeoutMs: positiveInteger('Timeout of the health probe, ms', 2_000),
  },
};

const RESERVED_HEADERS = new Set(['content-length', 'content-type', 'host', 'transfer-encoding', 'connection']);

/**
 * Applies defaults, checks what the schema cannot express, and resolves `apiKeyEnv` from `env`.
 * Throws ProviderConfigError. Safe to call on options the registry already validated.
 */
export function resolveOpenAICompatibleOptions(
  options: OpenAICompatibleProviderOptions,
  env: Readonly<Record<string, string | undefined>> = {},
): ResolvedOpenAICompatibleOptions {
  let url: URL;
  try {
    url = new URL(options.baseUrl);
  } catch {
    throw new ProviderConfigError(`baseUrl: "${options.baseUrl}" is not a valid URL`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    throw new ProviderConfigError(`baseUrl: "${options.baseUrl}" must be an http(s) URL`);
  }
  if (url.search || url.hash) throw new ProviderConfigError(`baseUrl: "${options.baseUrl}" must not have a query or fragment`);
  if (url.username || url.password) {
    throw new ProviderConfigError('baseUrl: must not contain credentials (use apiKey, apiKeyEnv or headers)');
  }
  if (!options.model) throw new ProviderConfigError('model: the upstream model id is required');
  if (options.apiKey !== undefined && options.apiKeyEnv !== undefined) {
    throw new ProviderConfigError('apiKey and apiKeyEnv are mutually exclusive');
  }
  let apiKey = options.apiKey;
  if (options.apiKeyEnv !== undefined) {
    apiKey = env[options.apiKeyEnv];
    if (!apiKey) throw new ProviderConfigError(`apiKeyEnv: the environment variable ${options.apiKeyEnv} is not set`);
  }
  const headers: Record<string, string> = {};
  for (const [name, value] of Object.entries(options.headers ?? {})) {
    const lower = name.toLowerCase();
    if (RESERVED_HEADERS.has(lower)) throw new ProviderConfigError(`headers: "${name}" is set by the provider`);
    headers[lower] = value;
  }
  const basePath = url.pathname.replace(/\/+$/, '');
  const integer = (name: string, value: number | undefined, fallback: number, min = 1): number => {
    const result = value ?? fallback;
    if (!Number.isInteger(result) || result < min) throw new ProviderConfigError(`${name}: must be an integer >= ${min}`);
    return result;
  };
  return {
    baseUrl: `${url.origin}${basePath}`,
    origin: url.origin,
    basePath,
    model: options.model,
    apiKey,
    headers,
    connectTimeoutMs: integer('connectTimeoutMs', options.connectTimeoutMs, 5_000),
    timeoutMs: integer('timeoutMs', options.timeoutMs, 60_000),
    idleTimeoutMs: integer('idleTimeoutMs', options.idleTimeoutMs, 60_000),
    connections: integer('connections', options.connections, 128),
    supportsCompletions: options.supportsCompletions ?? true,
    supportsTools: options.supportsTools ?? true,
    supportsLogprobs: options.supportsLogprobs ?? true,
    supportsEmbeddings: options.supportsEmbeddings ?? true,
    maxTokensField: options.maxTokensField ?? 'max_tokens',
    maxResponseBytes: integer('maxResponseBytes', options.maxResponseBytes, 64 * 1024 * 1024),
    healthCacheMs: integer('healthCacheMs', options.healthCacheMs, 5_000, 0),
    healthTimeoutMs: integer('healthTimeoutMs', options.healthTimeoutMs, 2_000),
  };
}
