import type { ModelRouter } from '@infer/model-providers';
import type { FastifyInstance } from 'fastify';
import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';
import type { EmbeddingsCache } from '../cache/embeddings-cache.js';
import type { ResponseCacheService } from '../cache/response-cache.service.js';
import type { UsageRecorder } from './usage-recorder.js';

/** Seconds; LLM requests range from a cache hit (well under 1 ms) to long generations. */
const DURATION_BUCKETS = [0.001, 0.005, 0.025, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120];

export interface MetricsSources {
  readonly cache: Pick<ResponseCacheService, 'stats' | 'inFlight' | 'enabled'>;
  /** null: the embeddings cache is off. */
  readonly embeddings?: Pick<EmbeddingsCache, 'stats'> | null;
  readonly router: Pick<ModelRouter, 'models' | 'status'>;
}

/**
 * The worker's Prometheus metrics (prom-client): Node's process metrics, HTTP requests by route and
 * status, and the cache's and the router's own counters. Those are read when Prometheus scrapes
 * (`collect`), so serving a request costs nothing for them; only the HTTP metrics are recorded per
 * request, by an onResponse hook.
 */
export function createMetricsRegistry(instance: string, sources: MetricsSources): Registry {
  const registry = new Registry();
  registry.setDefaultLabels({ instance });
  collectDefaultMetrics({ register: registry });

  new Counter({
    name: 'infer_cache_requests_total',
    help: 'Requests the response cache decided on, by result: hit, miss (led an upstream call), coalesced (joined one in flight), bypass.',
    labelNames: ['result'],
    registers: [registry],
    collect() {
      const { hits, misses, coalesced, bypasses } = sources.cache.stats;
      this.reset();
      this.inc({ result: 'hit' }, hits);
      this.inc({ result: 'miss' }, misses);
      this.inc({ result: 'coalesced' }, coalesced);
      this.inc({ result: 'bypass' }, bypasses);
    },
  });
  new Counter({
    name: 'infer_cache_store_errors_total',
    help: 'Cache writes that failed (Redis down or slow); the response was served anyway.',
    registers: [registry],
    collect() {
      this.reset();
      this.inc(sources.cache.stats.storeErrors);
    },
  });
  new Counter({
    name: 'infer_embeddings_cache_requests_total',
    help: 'Embeddings requests the embeddings cache decided on, by result: hit, miss (led a model call), coalesced (joined one in flight), bypass.',
    labelNames: ['result'],
    registers: [registry],
    collect() {
      this.reset();
      const stats = sources.embeddings?.stats;
      if (stats === undefined) return;
      this.inc({ result: 'hit' }, stats.hits);
      this.inc({ result: 'miss' }, stats.misses);
      this.inc({ result: 'coalesced' }, stats.coalesced);
      this.inc({ result: 'bypass' }, stats.bypasses);
    },
  });
  new Gauge({
    name: 'infer_cache_generations_in_flight',
    help: 'Generations in flight that identical requests can join.',
    registers: [registry],
    collect() {
      this.set(sources.cache.enabled ? sources.cache.inFlight : 0);
    },
  });

  const perDeployment = (name: string, help: string, value: (s: ReturnType<ModelRouter['status']>[number]) => number) =>
    new Gauge({
      name,
      help,
      labelNames: ['model', 'deployment'],
      registers: [registry],
      collect() {
        this.reset();
        for (const model of sources.router.models()) {
          for (const status of sources.router.status(model)) this.set({ model, deployment: status.id }, value(status));
        }
      },
    });
  perDeployment('infer_deployment_outstanding_requests', 'Requests a deployment is serving now (the router balances on this).', (s) => s.outstanding);
  perDeployment('infer_deployment_consecutive_failures', 'Retryable failures of a deployment in a row (0 once it succeeds).', (s) => s.consecutiveFailures);
  perDeployment('infer_deployment_cooldown_seconds', 'How long the router still avoids a deployment after failures.', (s) => s.coolingDownForMs / 1000);
  return registry;
}

/**
 * Counts finished HTTP responses by method, route pattern (`/v1/models/:model`, not the URL, so the
 * label set stays small) and status, with their duration. A stream counts when its last byte is
 * written; one whose client left first is not counted.
 */
export function recordHttpMetrics(fastify: FastifyInstance, registry: Registry): void {
  const requests = new Counter({
    name: 'http_requests_total',
    help: 'HTTP responses, by method, route and status code.',
    labelNames: ['method', 'route', 'status'],
    registers: [registry],
  });
  const duration = new Histogram({
    name: 'http_request_duration_seconds',
    help: 'Time from the request to the last byte of the response (streams included), by method and route.',
    labelNames: ['method', 'route'],
    buckets: DURATION_BUCKETS,
    registers: [registry],
  });
  const keyRequests = new Counter({
    name: 'infer_key_requests_total',
    help: 'HTTP responses to requests made with a named API key (API_KEYS_FILE), by key name, route and status code.',
    labelNames: ['key', 'route', 'status'],
    registers: [registry],
  });
  fastify.addHook('onResponse', (request, reply, done) => {
    const route = request.routeOptions.url ?? '(unmatched)';
    requests.inc({ method: request.method, route, status: reply.statusCode });
    duration.observe({ method: request.method, route }, reply.elapsedTime / 1000);
    const key = request.apiKey?.name;
    if (key !== undefined) keyRequests.inc({ key, route, status: reply.statusCode });
    done();
  });
}

/**
 * Tokens of the completions the API answered, by model, kind (prompt, completion, and
 * prompt_cached: the part of `prompt` a provider reused from its prompt cache) and source
 * (upstream: generated for this request; cache: served from the response cache).
 */
export function createUsageRecorder(registry: Registry): UsageRecorder {
  const tokens = new Counter({
    name: 'infer_tokens_total',
    help: 'Tokens of the completions answered, by model, kind (prompt, completion, or prompt_cached: prompt tokens a provider reused) and source (upstream or cache).',
    labelNames: ['model', 'kind', 'source'],
    registers: [registry],
  });
  const keyTokens = new Counter({
    name: 'infer_key_tokens_total',
    help: 'Tokens of the completions answered to requests made with a named API key (API_KEYS_FILE), by key name, model and kind (prompt, completion).',
    labelNames: ['key', 'model', 'kind'],
    registers: [registry],
  });
  const firstToken = new Histogram({
    name: 'infer_time_to_first_token_seconds',
    help: 'Streams: time from the request to its first part (the first token, or the cached answer), by model and source (upstream or cache).',
    labelNames: ['model', 'source'],
    buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
    registers: [registry],
  });
  const perToken = new Histogram({
    name: 'infer_time_per_output_token_seconds',
    help: 'Streams: time per output token after the first (from the first part to the finish, over completion tokens - 1), by model and source.',
    labelNames: ['model', 'source'],
    buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1],
    registers: [registry],
  });
  return {
    streamTiming(model, timing, completionTokens, fromCache) {
      const source = fromCache ? 'cache' : 'upstream';
      firstToken.observe({ model, source }, timing.firstPartMs / 1000);
      if (completionTokens > 1) perToken.observe({ model, source }, (timing.finishMs - timing.firstPartMs) / 1000 / (completionTokens - 1));
    },
    record(model, usage, fromCache, key) {
      const source = fromCache ? 'cache' : 'upstream';
      tokens.inc({ model, kind: 'prompt', source }, usage.promptTokens);
      tokens.inc({ model, kind: 'completion', source }, usage.completionTokens);
      if (usage.cachedPromptTokens !== undefined) tokens.inc({ model, kind: 'prompt_cached', source }, usage.cachedPromptTokens);
      if (key !== undefined) {
        keyTokens.inc({ key, model, kind: 'prompt' }, usage.promptTokens);
        keyTokens.inc({ key, model, kind: 'completion' }, usage.completionTokens);
      }
    },
  };
}
