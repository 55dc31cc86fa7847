import { createServer } from 'node:net';
import type { AddressInfo } from 'node:net';
import Fastify from 'fastify';
import { describe, expect, it } from 'vitest';
import { createMetricsRegistry, createUsageRecorder, type MetricsSources, recordHttpMetrics } from './metrics.js';
import { MetricsServer } from './metrics-server.js';

const quiet = { log: () => undefined, warn: () => undefined };

function sources(): MetricsSources & { cache: { stats: Record<string, number>; inFlight: number } } {
  return {
    cache: { enabled: true, inFlight: 2, stats: { hits: 5, misses: 3, bypasses: 1, coalesced: 4, storeErrors: 0 } },
    embeddings: { stats: { hits: 7, misses: 2, coalesced: 4, bypasses: 1, storeErrors: 0 } },
    router: {
      models: () => ['m'],
      status: () => [
        { id: 'm#0', label: 'a', weight: 1, outstanding: 3, coolingDownForMs: 0, consecutiveFailures: 0 },
        { id: 'm#1', label: 'b', weight: 1, outstanding: 0, coolingDownForMs: 2500, consecutiveFailures: 2 },
      ],
    },
  } as unknown as MetricsSources & { cache: { stats: Record<string, number>; inFlight: number } };
}

const value = (text: string, series: string) => {
  const line = text.split('\n').find((l) => l.startsWith(`${series} `));
  return line === undefined ? undefined : Number(line.slice(series.length + 1));
};

describe('metrics', () => {
  it('reads the cache and router counters when scraped', async () => {
    const src = sources();
    const registry = createMetricsRegistry('host:1', src);
    let text = await registry.metrics();
    expect(value(text, 'infer_cache_requests_total{result="hit",instance="host:1"}')).toBe(5);
    expect(value(text, 'infer_cache_requests_total{result="coalesced",instance="host:1"}')).toBe(4);
    expect(value(text, 'infer_cache_generations_in_flight{instance="host:1"}')).toBe(2);
    expect(value(text, 'infer_embeddings_cache_requests_total{result="hit",instance="host:1"}')).toBe(7);
    expect(value(text, 'infer_embeddings_cache_requests_total{result="miss",instance="host:1"}')).toBe(2);
    expect(value(text, 'infer_embeddings_cache_requests_total{result="coalesced",instance="host:1"}')).toBe(4);
    expect(value(text, 'infer_deployment_outstanding_requests{model="m",deployment="m#0",instance="host:1"}')).toBe(3);
    expect(value(text, 'infer_deployment_cooldown_seconds{model="m",deployment="m#1",instance="host:1"}')).toBe(2.5);
    expect(value(text, 'infer_deployment_consecutive_failures{model="m",deployment="m#1",instance="host:1"}')).toBe(2);
    expect(text).toContain('process_cpu_user_seconds_total');
    // Counters follow the service's totals from one scrape to the next.
    src.cache.stats['hits'] = 9;
    text = await registry.metrics();
    expect(value(text, 'infer_cache_requests_total{result="hit",instance="host:1"}')).toBe(9);
  });

  it('counts HTTP responses by route pattern and status', async () => {
    const registry = createMetricsRegistry('h', sources());
    const app = Fastify();
    recordHttpMetrics(app, registry);
    app.get('/v1/models/:model', async (_request, reply) => reply.code(404).send({ error: 'nope' }));
    app.get('/v1/models', async () => ({ data: [] }));
    await app.inject('/v1/models');
    await app.inject('/v1/models');
    await app.inject('/v1/models/abc');
    await app.inject('/elsewhere');
    const text = await registry.metrics();
    expect(value(text, 'http_requests_total{method="GET",route="/v1/models",status="200",instance="h"}')).toBe(2);
    expect(value(text, 'http_requests_total{method="GET",route="/v1/models/:model",status="404",instance="h"}')).toBe(1);
    expect(value(text, 'http_requests_total{method="GET",route="(unmatched)",status="404",instance="h"}')).toBe(1);
    expect(value(text, 'http_request_duration_seconds_count{instance="h",method="GET",route="/v1/models"}')).toBe(2);
    await app.close();
  });

  it('adds up tokens by model, kind and source', async () => {
    const registry = createMetricsRegistry('h', sources());
    const usage = createUsageRecorder(registry);
    usage.record('m', { promptTokens: 10, completionTokens: 5 }, false);
    usage.record('m', { promptTokens: 10, completionTokens: 5 }, true);
    usage.record('m', { promptTokens: 3, completionTokens: 7 }, false);
    usage.record('m', { promptTokens: 40, completionTokens: 1, cachedPromptTokens: 32 }, false);
    const text = await registry.metrics();
    expect(value(text, 'infer_tokens_total{model="m",kind="prompt_cached",source="upstream",instance="h"}')).toBe(32);
    expect(value(text, 'infer_tokens_total{model="m",kind="prompt",source="upstream",instance="h"}')).toBe(53);
    expect(value(text, 'infer_tokens_total{model="m",kind="completion",source="upstream",instance="h"}')).toBe(13);
    expect(value(text, 'infer_tokens_total{model="m",kind="completion",source="cache",instance="h"}')).toBe(5);
    // Nothing per key without named keys.
    expect(text).not.toMatch(/^infer_key_tokens_total\{/m);
  });

  it('observes stream timings: time to first token, and per output token after it (not for one-token answers)', async () => {
    const registry = createMetricsRegistry('h', sources());
    const usage = createUsageRecorder(registry);
    usage.streamTiming('m', { firstPartMs: 200, finishMs: 1_100 }, 10, false);
    usage.streamTiming('m', { firstPartMs: 2, finishMs: 3 }, 1, true);
    const text = await registry.metrics();
    // (prom-client puts the registry's default label first in histogram series.)
    expect(value(text, 'infer_time_to_first_token_seconds_sum{instance="h",model="m",source="upstream"}')).toBeCloseTo(0.2, 6);
    expect(value(text, 'infer_time_to_first_token_seconds_bucket{le="0.25",instance="h",model="m",source="upstream"}')).toBe(1);
    expect(value(text, 'infer_time_to_first_token_seconds_bucket{le="0.1",instance="h",model="m",source="upstream"}')).toBe(0);
    expect(value(text, 'infer_time_per_output_token_seconds_sum{instance="h",model="m",source="upstream"}')).toBeCloseTo(0.1, 6);
    expect(value(text, 'infer_time_to_first_token_seconds_count{instance="h",model="m",source="cache"}')).toBe(1);
    expect(text).not.toMatch(/^infer_time_per_output_token_seconds_count\{instance="h",model="m",source="cache"/m);
  });

  it('adds up the tokens of named API keys by key, model and kind (cache hits included)', async () => {
    const registry = createMetricsRegistry('h', sources());
    const usage = createUsageRecorder(registry);
    usage.record('m', { promptTokens: 10, completionTokens: 5 }, false, 'team-a');
    usage.record('m', { promptTokens: 10, completionTokens: 5 }, true, 'team-a');
    usage.record('m', { promptTokens: 4, completionTokens: 1 }, false, 'team-b');
    usage.record('m', { promptTokens: 100, completionTokens: 100 }, false);
    const text = await registry.metrics();
    expect(value(text, 'infer_key_tokens_total{key="team-a",model="m",kind="prompt",instance="h"}')).toBe(20);
    expect(value(text, 'infer_key_tokens_total{key="team-a",model="m",kind="completion",instance="h"}')).toBe(10);
    expect(value(text, 'infer_key_tokens_total{key="team-b",model="m",kind="prompt",instance="h"}')).toBe(4);
    expect(value(text, 'infer_tokens_total{model="m",kind="prompt",source="upstream",instance="h"}')).toBe(114);
  });

  it('serves GET /metrics, and waits for a port another process still holds (pm2 reload)', async () => {
    const blocker = createServer();
    await new Promise<void>((resolve) => blocker.listen(0, '127.0.0.1', resolve));
    const port = (blocker.address() as AddressInfo).port;
    const server = new MetricsServer(createMetricsRegistry('h', sources()), '127.0.0.1', port, quiet, 50);
    await server.start();
    expect(server.listening).toBe(false);
    await new Promise<void>((resolve) => blocker.close(() => resolve()));
    const deadline = Date.now() + 2_000;
    while (!server.listening && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    expect(server.listening).toBe(true);
    const res = await fetch(`http://127.0.0.1:${port}/metrics`);
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toMatch(/^text\/plain; version=0\.0\.4/);
    expect(await res.text()).toContain('infer_cache_requests_total');
    expect((await fetch(`http://127.0.0.1:${port}/other`)).status).toBe(404);
    await server.close();
    expect(server.listening).toBe(false);
  });
});
