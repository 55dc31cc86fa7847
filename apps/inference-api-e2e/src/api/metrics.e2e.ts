import { type FakeUpstream, startFakeUpstream } from '@infer/model-providers/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type ApiServer, startApiServer } from '../support/api-server.js';
import { freePort } from '../support/free-port.js';
import { fakeModelsYaml } from '../support/load.js';

/** METRICS_PORT: Prometheus text on a port of the worker's own, next to the API. */
describe('metrics', () => {
  let server: ApiServer;
  let upstream: FakeUpstream;
  let metricsUrl: string;

  beforeAll(async () => {
    upstream = await startFakeUpstream({ tokens: 4 });
    const port = await freePort();
    metricsUrl = `http://127.0.0.1:${port}/metrics`;
    server = await startApiServer({ env: { METRICS_PORT: String(port) }, modelsYaml: fakeModelsYaml(upstream.url, 'm') });
  });

  afterAll(async () => {
    await server?.stop();
    await upstream?.close();
  });

  const series = (text: string, prefix: string) =>
    text
      .split('\n')
      .filter((line) => line.startsWith(prefix))
      .reduce((sum, line) => sum + Number(line.split(' ').pop()), 0);

  it('counts requests by route and status, and the cache results', async () => {
    const before = await (await fetch(metricsUrl)).text();
    // Deterministic (temperature 0), so the second one is a cache hit.
    for (let i = 0; i < 2; i++) {
      const res = await fetch(`${server.url}/v1/chat/completions`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ model: 'm', messages: [{ role: 'user', content: 'metrics one' }], temperature: 0 }),
      });
      expect(res.status).toBe(200);
      await res.text();
    }
    await fetch(`${server.url}/v1/models/unknown`);
    const res = await fetch(metricsUrl);
    expect(res.status).toBe(200);
    const text = await res.text();
    const route = 'http_requests_total{method="POST",route="/v1/chat/completions",status="200"';
    expect(series(text, route) - series(before, route)).toBe(2);
    expect(series(text, 'http_requests_total{method="GET",route="/v1/models/:model",status="404"')).toBe(1);
    expect(series(text, 'infer_cache_requests_total{result="hit"') - series(before, 'infer_cache_requests_total{result="hit"')).toBe(1);
    expect(series(text, 'infer_deployment_outstanding_requests{model="m"')).toBe(0);
    expect(text).toMatch(/^nodejs_eventloop_lag_seconds\{/m);
    // Tokens: the miss was generated upstream, the hit came from the cache (same usage).
    const upstreamTokens = series(text, 'infer_tokens_total{model="m",kind="completion",source="upstream"');
    expect(upstreamTokens).toBeGreaterThan(0);
    expect(series(text, 'infer_tokens_total{model="m",kind="completion",source="cache"')).toBe(upstreamTokens);
    // A stream counts its tokens when its finish is written.
    const stream = await fetch(`${server.url}/v1/chat/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ model: 'm', messages: [{ role: 'user', content: 'metrics stream' }], temperature: 0, stream: true }),
    });
    expect(await stream.text()).toContain('[DONE]');
    const after = await (await fetch(metricsUrl)).text();
    expect(series(after, 'infer_tokens_total{model="m",kind="completion",source="upstream"')).toBeGreaterThan(upstreamTokens);
    // The API port does not serve them (a balancer would pick a worker at random).
    expect((await fetch(`${server.url}/metrics`)).status).toBe(404);
  });

  it('times streams: time to the first token and per output token, by source', async () => {
    const before = await (await fetch(metricsUrl)).text();
    upstream.configure({ latencyMs: 150, interTokenDelayMs: 40 });
    const stream = (path: string, body: object) =>
      fetch(`${server.url}${path}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ model: 'm', stream: true, ...body }) }).then((r) => r.text());
    expect(await stream('/v1/chat/completions', { messages: [{ role: 'user', content: 'timed stream' }], temperature: 0 })).toContain('[DONE]');
    expect(await stream('/v1/responses', { input: 'timed responses stream', temperature: 0 })).toContain('response.completed');
    upstream.configure({ latencyMs: 0, interTokenDelayMs: 0 });
    // The same chat again: replayed from the cache.
    expect(await stream('/v1/chat/completions', { messages: [{ role: 'user', content: 'timed stream' }], temperature: 0 })).toContain('[DONE]');
    const text = await (await fetch(metricsUrl)).text();
    // Histogram series put `instance` first: match the name and the labels wherever they are.
    const sum = (metrics: string, name: string, source: string) =>
      metrics
        .split('\n')
        .filter((line) => line.startsWith(`${name}{`) && line.includes('model="m"') && line.includes(`source="${source}"`))
        .reduce((total, line) => total + Number(line.split(' ').pop()), 0);
    const delta = (name: string, source: string) => sum(text, name, source) - sum(before, name, source);
    expect(delta('infer_time_to_first_token_seconds_count', 'upstream')).toBe(2);
    expect(delta('infer_time_to_first_token_seconds_count', 'cache')).toBe(1);
    // The upstream waited 150 ms before its first token, then 40 ms between tokens.
    const ttft = delta('infer_time_to_first_token_seconds_sum', 'upstream') / 2;
    expect(ttft).toBeGreaterThanOrEqual(0.14);
    expect(ttft).toBeLessThan(1);
    const perToken = delta('infer_time_per_output_token_seconds_sum', 'upstream') / delta('infer_time_per_output_token_seconds_count', 'upstream');
    expect(perToken).toBeGreaterThanOrEqual(0.03);
    expect(perToken).toBeLessThan(0.2);
    expect(delta('infer_time_to_first_token_seconds_sum', 'cache')).toBeLessThan(0.1);
  });

  it('counts the embeddings cache results', async () => {
    const before = await (await fetch(metricsUrl)).text();
    for (let i = 0; i < 3; i++) {
      const res = await fetch(`${server.url}/v1/embeddings`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ model: 'm', input: 'metrics embeddings' }),
      });
      expect(res.status).toBe(200);
      await res.text();
      await new Promise((r) => setTimeout(r, 20));
    }
    const text = await (await fetch(metricsUrl)).text();
    const delta = (result: string) =>
      series(text, `infer_embeddings_cache_requests_total{result="${result}"`) - series(before, `infer_embeddings_cache_requests_total{result="${result}"`);
    expect([delta('miss'), delta('hit')]).toEqual([1, 2]);
  });
});
