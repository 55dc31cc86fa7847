import { hostname } from 'node:os';
import proxyAddr from '@fastify/proxy-addr';
import { Ajv } from 'ajv';
import { ApiKeysFileError, loadApiKeysFile } from '../common/api-keys-file.js';
import { type ApiKeyRecord, anonymousKeys } from '../common/api-keys.js';

/**
 * Every environment variable the API reads, validated once at boot. Nothing else in the app
 * reads process.env: inject APP_CONFIG and use the typed fields.
 */
const envSchema = {
  type: 'object',
  additionalProperties: true,
  properties: {
    PORT: { type: 'integer', minimum: 0, maximum: 65535, default: 3000 },
    HOST: { type: 'string', minLength: 1, default: '0.0.0.0' },
    MODELS_FILE: { type: 'string', minLength: 1 },
    MODELS_DIR: { type: 'string', minLength: 1, default: '.cache/models' },
    DEFAULT_MODEL_THREADS: { type: 'integer', minimum: 1, maximum: 256, default: 1 },
    PREDICT_MODEL: { type: 'string', minLength: 1 },
    PREDICT_MAX_TOKENS: { type: 'integer', minimum: 1, default: 64 },
    LOG_LEVEL: { type: 'string', enum: ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'], default: 'info' },
    LOG_REQUESTS: { type: 'boolean', default: true },
    BODY_LIMIT_BYTES: { type: 'integer', minimum: 1024, default: 1_048_576 },
    TRUST_PROXY: { type: 'string', default: 'loopback' },
    INSTANCE_ID: { type: 'string', minLength: 1 },
    SHUTDOWN_TIMEOUT_MS: { type: 'integer', minimum: 0, default: 10_000 },
    REDIS_URL: { type: 'string', pattern: '^rediss?://' },
    REDIS_TIMEOUT_MS: { type: 'integer', minimum: 10, default: 500 },
    REDIS_REQUIRED: { type: 'boolean', default: true },
    CACHE_ENABLED: { type: 'boolean', default: true },
    CACHE_TTL_SECONDS: { type: 'number', minimum: 0, default: 60 },
    CACHE_MAX_TTL_SECONDS: { type: 'number', minimum: 0, default: 86_400 },
    CACHE_MAX_ENTRIES: { type: 'integer', minimum: 1, default: 10_000 },
    CACHE_MAX_BYTES: { type: 'integer', minimum: 1_048_576, default: 134_217_728 },
    CACHE_NONDETERMINISTIC: { type: 'boolean', default: false },
    CACHE_NAMESPACE: { type: 'string', enum: ['global', 'api-key', 'header'], default: 'global' },
    CACHE_NAMESPACE_HEADER: { type: 'string', minLength: 1, default: 'x-tenant-id' },
    COALESCE_WAIT_MS: { type: 'integer', minimum: 0, default: 30_000 },
    CACHE_EMBEDDINGS: { type: 'boolean', default: true },
    CACHE_EMBEDDINGS_MAX_BYTES: { type: 'integer', minimum: 1024, default: 67_108_864 },
    METRICS_PORT: { type: 'integer', minimum: 1, maximum: 65535 },
    METRICS_HOST: { type: 'string', minLength: 1, default: '127.0.0.1' },
    // Set by PM2 for each worker of a cluster (0, 1, ...): the worker's metrics port is METRICS_PORT + it.
    // Read only with METRICS_PORT (other tools, e.g. node-config, give it other meanings).
    NODE_APP_INSTANCE: { type: 'string' },
    CORS_ORIGINS: { type: 'string', pattern: '^(\\*|https?://[^\\s,]+(\\s*,\\s*https?://[^\\s,]+)*)$' },
    API_KEYS: { type: 'string', pattern: '^[^\\s,]+(\\s*,\\s*[^\\s,]+)*\\s*,?$' },
    API_KEYS_FILE: { type: 'string', minLength: 1 },
    RATE_LIMIT_RPM: { type: 'integer', minimum: 0, default: 0 },
    RESPONSES_STORE_ENABLED: { type: 'boolean', default: true },
    RESPONSES_STORE_TTL_SECONDS: { type: 'integer', minimum: 1, default: 2_592_000 },
    RESPONSES_STORE_MAX_ENTRIES: { type: 'integer', minimum: 1, default: 1_000 },
    RESPONSES_STORE_MAX_BYTES: { type: 'integer', minimum: 1024, default: 33_554_432 },
    RESPONSES_BACKGROUND_LEASE_SECONDS: { type: 'integer', minimum: 3, maximum: 3600, default: 30 },
  },
} as const;

/** The names of every variable the API reads (for launchers that pass the environment on, e.g. PM2). */
export const CONFIG_VARIABLES: readonly string[] = Object.keys(envSchema.properties);

export interface AppConfig {
  readonly port: number;
  readonly host: string;
  /** Path to the models YAML file; undefined: the built-in tiny llama.cpp model. */
  readonly modelsFile: string | undefined;
  /** Where the built-in GGUF is written on first use. */
  readonly modelsDir: string;
  readonly defaultModelThreads: number;
  /** Model used by GET /predict; undefined: the first model of the models file. */
  readonly predictModel: string | undefined;
  readonly predictMaxTokens: number;
  readonly logLevel: 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace' | 'silent';
  readonly logRequests: boolean;
  readonly bodyLimitBytes: number;
  /** Fastify trustProxy: "true", "false", a hop count, or comma-separated addresses/CIDRs/"loopback". */
  readonly trustProxy: boolean | number | string;
  readonly instanceId: string;
  readonly shutdownTimeoutMs: number;
  /** Prometheus metrics on their own port (METRICS_PORT + the PM2 worker number); undefined: none. */
  readonly metrics: { readonly host: string; readonly port: number } | undefined;
  /** Browser origins allowed by CORS (CORS_ORIGINS): `*`, a list, or undefined (no CORS headers). */
  readonly corsOrigins: '*' | readonly string[] | undefined;
  /**
   * Keys accepted on /v1 and /predict: API_KEYS (comma-separated, anonymous) and API_KEYS_FILE (named,
   * with their own rate limits and model lists); empty: no authentication.
   */
  readonly apiKeys: readonly ApiKeyRecord[];
  /** Requests per minute per client (API key, else address) on the inference routes; 0: no limit. */
  readonly rateLimitRpm: number;
  readonly redis: { readonly url: string; readonly timeoutMs: number; readonly required: boolean } | undefined;
  readonly cache: {
    readonly enabled: boolean;
    readonly ttlSeconds: number;
    /** Upper bound on a per-request TTL (`x-cache-ttl`). */
    readonly maxTtlSeconds: number;
    readonly maxEntries: number;
    /** Bound of the in-process cache in (approximate) bytes of entries: a few long answers with logprobs can be megabytes each. */
    readonly maxBytes: number;
    readonly cacheNondeterministic: boolean;
    readonly namespace: 'global' | 'api-key' | 'header';
    readonly namespaceHeader: string;
    /**
     * With `namespace: api-key`: the named keys (API_KEYS_FILE), digest to name, so that a named key's
     * cache namespace is its name (rotating the key keeps its entries), as its stored responses are.
     */
    readonly keyNames: ReadonlyMap<string, string>;
    readonly coalesceWaitMs: number;
    /** Cache /v1/embeddings answers too (they are deterministic). */
    readonly embeddings: boolean;
    /** Bound of the in-process embeddings cache (approximate bytes of vectors); Redis relies on the TTL. */
    readonly embeddingsMaxBytes: number;
  };
  /**
   * Stored Responses API responses (`store`, `previous_response_id`, GET/DELETE /v1/responses/{id}):
   * on Redis with the app's connection (REDIS_URL), else in this process.
   */
  readonly responsesStore: {
    readonly enabled: boolean;
    readonly ttlSeconds: number;
    /** Bounds of the in-process store (an LRU: responses, and their approximate size); Redis relies on the TTL. */
    readonly maxEntries: number;
    readonly maxBytes: number;
    /**
     * On Redis: how long a background response counts as running without word from the process that
     * runs it (renewed every third of it); after that a reader records it as failed.
     */
    readonly backgroundLeaseSeconds: number;
  };
}

export class ConfigValidationError extends Error {
  override readonly name = 'ConfigValidationError';
}

const validateEnv = new Ajv({ allErrors: true, useDefaults: true, coerceTypes: true, strict: false }).compile(envSchema);

/** Reads and validates the environment. Throws ConfigValidationError listing every bad variable. */
export function loadAppConfig(env: Readonly<Record<string, string | undefined>> = process.env): AppConfig {
  const values: Record<string, unknown> = {};
  for (const key of Object.keys(envSchema.properties)) {
    const value = env[key];
    if (value !== undefined && value !== '') values[key] = value.trim();
  }
  if (!validateEnv(values)) {
    const problems = (validateEnv.errors ?? []).map((e) => {
      const name = e.instancePath.slice(1);
      // Secrets never reach the message (it goes to the logs).
      if (name === 'API_KEYS') return 'API_KEYS must be keys without spaces, separated by commas (value not shown)';
      if (name === 'REDIS_URL') return REDIS_URL_SHAPE;
      return `${name} ${e.message ?? 'is invalid'} (got ${JSON.stringify(env[name])})`;
    });
    throw new ConfigValidationError(`Invalid configuration: ${problems.join('; ')}`);
  }
  const v = values as Record<string, never>;
  const redisUrl = v['REDIS_URL'] as string | undefined;
  const problems = [...(redisUrl === undefined ? [] : redisUrlProblems(redisUrl)), ...trustProxyProblems(v['TRUST_PROXY'])];
  if (problems.length > 0) throw new ConfigValidationError(`Invalid configuration: ${problems.join('; ')}`);
  const metrics = metricsEndpoint(v['METRICS_PORT'], v['METRICS_HOST'], v['NODE_APP_INSTANCE']);
  const apiKeys = apiKeysOf(v['API_KEYS'], v['API_KEYS_FILE']);
  return {
    port: v['PORT'],
    host: v['HOST'],
    modelsFile: v['MODELS_FILE'],
    modelsDir: v['MODELS_DIR'],
    defaultModelThreads: v['DEFAULT_MODEL_THREADS'],
    predictModel: v['PREDICT_MODEL'],
    predictMaxTokens: v['PREDICT_MAX_TOKENS'],
    logLevel: v['LOG_LEVEL'],
    logRequests: v['LOG_REQUESTS'],
    bodyLimitBytes: v['BODY_LIMIT_BYTES'],
    trustProxy: parseTrustProxy(v['TRUST_PROXY']),
    instanceId: v['INSTANCE_ID'] ?? `${hostname()}:${process.pid}`,
    shutdownTimeoutMs: v['SHUTDOWN_TIMEOUT_MS'],
    metrics,
    corsOrigins: parseCorsOrigins(v['CORS_ORIGINS']),
    rateLimitRpm: v['RATE_LIMIT_RPM'],
    apiKeys,
    redis: redisUrl ? { url: redisUrl, timeoutMs: v['REDIS_TIMEOUT_MS'], required: v['REDIS_REQUIRED'] } : undefined,
    cache: {
      enabled: v['CACHE_ENABLED'],
      ttlSeconds: v['CACHE_TTL_SECONDS'],
      maxTtlSeconds: v['CACHE_MAX_TTL_SECONDS'],
      maxEntries: v['CACHE_MAX_ENTRIES'],
      maxBytes: v['CACHE_MAX_BYTES'],
      cacheNondeterministic: v['CACHE_NONDETERMINISTIC'],
      namespace: v['CACHE_NAMESPACE'],
      namespaceHeader: (v['CACHE_NAMESPACE_HEADER'] as string).toLowerCase(),
      keyNames: new Map(apiKeys.flatMap((key) => (key.name === undefined ? [] : [[key.digest, key.name] as const]))),
      coalesceWaitMs: v['COALESCE_WAIT_MS'],
      embeddings: v['CACHE_EMBEDDINGS'],
      embeddingsMaxBytes: v['CACHE_EMBEDDINGS_MAX_BYTES'],
    },
    responsesStore: {
      enabled: v['RESPONSES_STORE_ENABLED'],
      ttlSeconds: v['RESPONSES_STORE_TTL_SECONDS'],
      maxEntries: v['RESPONSES_STORE_MAX_ENTRIES'],
      maxBytes: v['RESPONSES_STORE_MAX_BYTES'],
      backgroundLeaseSeconds: v['RESPONSES_BACKGROUND_LEASE_SECONDS'],
    },
  };
}

/** API_KEYS (anonymous) then API_KEYS_FILE (named: a key in both is the named one). */
function apiKeysOf(list: string | undefined, file: string | undefined): ApiKeyRecord[] {
  const anonymous = list === undefined ? [] : anonymousKeys([...new Set(list.split(',').map((k) => k.trim()).filter((k) => k.length > 0))]);
  if (file === undefined) return anonymous;
  let named: ApiKeyRecord[];
  try {
    named = loadApiKeysFile(file);
  } catch (error) {
    if (error instanceof ApiKeysFileError) throw new ConfigValidationError(`Invalid configuration: ${error.message}`);
    throw error;
  }
  const digests = new Set(named.map((record) => record.digest));
  return [...anonymous.filter((record) => !digests.has(record.digest)), ...named];
}

/** METRICS_PORT + the PM2 worker number (NODE_APP_INSTANCE, 0 outside PM2). */
function metricsEndpoint(port: number | undefined, host: string, instance: string | undefined): AppConfig['metrics'] {
  if (port === undefined) return undefined;
  if (instance !== undefined && !/^\d+$/.test(instance)) {
    throw new ConfigValidationError(`Invalid configuration: NODE_APP_INSTANCE must be a worker number (0, 1, ...) with METRICS_PORT (got ${JSON.stringify(instance)})`);
  }
  const worker = Number(instance ?? 0);
  if (port + worker > 65535) {
    throw new ConfigValidationError('Invalid configuration: METRICS_PORT + NODE_APP_INSTANCE (the PM2 worker number) must be <= 65535');
  }
  return { host, port: port + worker };
}

function parseCorsOrigins(value: string | undefined): '*' | readonly string[] | undefined {
  if (value === undefined) return undefined;
  if (value === '*') return '*';
  // Browsers send the Origin without a trailing slash.
  return value.split(',').map((origin) => origin.trim().replace(/\/+$/, ''));
}

/**
 * What is wrong with REDIS_URL (`redis[s]://[[user]:password@]host[:port][/db]`), checked here
 * rather than by the Redis client at connect time, whose error quotes the URL. The value is never
 * shown: it may hold a password.
 */
const REDIS_URL_SHAPE = 'REDIS_URL must be redis[s]://[[user]:password@]host[:port][/db] (value not shown: it may hold a password)';

function redisUrlProblems(value: string): string[] {
  const shape = REDIS_URL_SHAPE;
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    return [shape];
  }
  if ((url.protocol !== 'redis:' && url.protocol !== 'rediss:') || url.hostname === '' || url.search !== '' || url.hash !== '') return [shape];
  if (url.pathname !== '' && url.pathname !== '/' && !/^\/\d+$/.test(url.pathname)) return [`${shape}; the path is the database number`];
  return [];
}

/**
 * TRUST_PROXY: true, false, a hop count, or addresses / CIDR ranges / loopback, linklocal, uniquelocal,
 * comma-separated: checked with @fastify/proxy-addr, which Fastify hands the value to (its error would
 * otherwise come at boot, as a stack trace).
 */
function trustProxyProblems(value: string): string[] {
  if (value === 'true' || value === 'false' || /^\d+$/.test(value)) return [];
  const bad = value
    .split(',')
    .map((entry) => entry.trim())
    .filter((entry) => {
      try {
        proxyAddr.compile(entry);
        return false;
      } catch {
        return true;
      }
    });
  return bad.length === 0
    ? []
    : [`TRUST_PROXY must be true, false, a number of hops, or IP addresses, CIDR ranges, loopback, linklocal or uniquelocal, comma-separated (not ${bad.map((entry) => JSON.stringify(entry)).join(', ')})`];
}

function parseTrustProxy(value: string): boolean | number | string {
  if (value === 'true') return true;
  if (value === 'false') return false;
  if (/^\d+$/.test(value)) return Number(value);
  return value;
}
