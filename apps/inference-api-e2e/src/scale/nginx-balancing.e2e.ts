import { type FakeUpstream, startFakeUpstream } from '@infer/model-providers/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type ApiServer, startApiServer } from '../support/api-server.js';
import { chatOnce, chatStream, fakeModelsYaml, runBoundedLoad, sleep } from '../support/load.js';
import { freePort } from '../support/free-port.js';
import { type NginxServer, startNginx } from '../support/nginx.js';

/**
 * deploy/nginx in front of three API processes (what three hosts look like), with the Debian
 * nginx binary in the foreground on its own prefix and port.
 */
describe('NGINX in front of 3 API instances', () => {
  let upstream: FakeUpstream;
  let apis: ApiServer[] = [];
  let nginx: NginxServer;

  beforeAll(async () => {
    // Streams: 10 tokens, 150 ms apart (1.5 s). Non-streamed answers: 20 ms.
    upstream = await startFakeUpstream({ tokens: 10, interTokenDelayMs: 150, latencyMs: 20, recordLimit: 10 });
    // A second model whose only upstream is down (nothing listens on its port): every instance is unready.
    const down = `  - name: down\n    deployments:\n      - provider: openai-compatible\n        baseUrl: http://127.0.0.1:${await freePort()}/v1\n        model: fake\n`;
    apis = await Promise.all(
      [1, 2, 3].map((i) =>
        startApiServer({
          env: { INSTANCE_ID: `api-${i}`, CACHE_ENABLED: 'false', SHUTDOWN_TIMEOUT_MS: '5000' },
          modelsYaml: fakeModelsYaml(upstream.url) + down,
        }),
      ),
    );
    nginx = await startNginx({ servers: apis.map((a) => `127.0.0.1:${a.port}`) });
  });

  afterAll(async () => {
    await nginx?.stop();
    await Promise.all(apis.map((a) => a.stop()));
    await upstream?.close();
  });

  it('spreads requests over every instance (x-served-by)', async () => {
    const servedBy = new Set<string>();
    const result = await runBoundedLoad({
      concurrency: 6,
      durationMs: 10_000,
      maxRequests: 60,
      request: async (i) => servedBy.add(await chatOnce(nginx.url, `spread ${i}`)),
    });
    expect(result.failed).toBe(0);
    expect([...servedBy].sort()).toEqual(['api-1', 'api-2', 'api-3']);
  });

  it('passes SSE through unbuffered: the first chunk arrives long before the stream ends', async () => {
    const outcome = await chatStream(nginx.url, 'stream through nginx');
    expect(outcome.status).toBe(200);
    expect(outcome.done).toBe(true);
    expect(outcome.deltas).toBe(10);
    // 10 tokens x 150 ms: a buffered proxy would deliver everything at ~1.5 s in one piece.
    expect(outcome.firstDeltaMs).toBeLessThan(outcome.endMs - 800);
    expect(outcome.reads).toBeGreaterThanOrEqual(5);
  });

  it('passes Responses API streams (POST /v1/responses) through unbuffered too', async () => {
    const started = performance.now();
    const res = await fetch(`${nginx.url}/v1/responses`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ model: 'm', input: 'stream a response through nginx', stream: true }),
      signal: AbortSignal.timeout(30_000),
    });
    expect(res.status).toBe(200);
    let text = '';
    let firstDeltaMs = -1;
    const decoder = new TextDecoder();
    for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
      text += decoder.decode(chunk, { stream: true });
      if (firstDeltaMs < 0 && text.includes('event: response.output_text.delta')) firstDeltaMs = performance.now() - started;
    }
    const endMs = performance.now() - started;
    expect(text.match(/event: response\.output_text\.delta/g)).toHaveLength(10);
    expect(text).toContain('event: response.completed');
    expect(firstDeltaMs).toBeGreaterThan(0);
    expect(firstDeltaMs).toBeLessThan(endMs - 800);
  });

  it("answers NGINX's own errors in the OpenAI shape (body over client_max_body_size)", async () => {
    const res = await fetch(`${nginx.url}/v1/chat/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ model: 'm', messages: [{ role: 'user', content: 'x'.repeat(2 * 1024 * 1024) }] }),
    });
    expect(res.status).toBe(413);
    const body = (await res.json()) as { error: { code: string; type: string } };
    expect(body.error).toMatchObject({ code: 'request_too_large', type: 'invalid_request_error' });
  });

  it('passes on the 503s and 502s every instance gives (a model whose upstream is down) without marking any instance down', async () => {
    // Readiness: no instance is ready (the model "down" has no healthy deployment). Each probe gets an
    // instance's own 503 (x-served-by), never NGINX's "no live upstreams".
    for (let i = 0; i < 8; i++) {
      const res = await fetch(`${nginx.url}/health/ready`);
      expect(res.status).toBe(503);
      expect(res.headers.get('x-served-by')).toMatch(/^api-/);
      expect(((await res.json()) as { status: string }).status).toBe('error');
    }
    // Requests for that model: the API's own error each time.
    for (let i = 0; i < 8; i++) {
      const res = await fetch(`${nginx.url}/v1/chat/completions`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ model: 'down', messages: [{ role: 'user', content: `down ${i}` }] }),
      });
      expect([502, 503]).toContain(res.status);
      expect(res.headers.get('x-served-by')).toMatch(/^api-/);
      await res.body?.cancel();
    }
    // Every instance still gets the traffic of the healthy model.
    const servedBy = new Set<string>();
    for (let i = 0; i < 30; i++) servedBy.add(await chatOnce(nginx.url, `still up ${i}`));
    expect([...servedBy].sort()).toEqual(['api-1', 'api-2', 'api-3']);
  });

  it('loses no request when one of the 3 instances is killed (SIGKILL) under load', async () => {
    const victim = apis[1]!;
    const servedAfterKill = new Set<string>();
    let killedAt = 0;
    const load = runBoundedLoad({
      concurrency: 8,
      durationMs: 4_000,
      maxRequests: 4_000,
      request: async (i) => {
        const servedBy = await chatOnce(nginx.url, `kill ${i}`);
        if (killedAt && Date.now() - killedAt > 200) servedAfterKill.add(servedBy);
      },
    });
    await sleep(1_200);
    victim.process.kill('SIGKILL');
    killedAt = Date.now();
    const result = await load;
    console.log(`kill test: ${result.total} requests in ${result.durationMs} ms, ${result.failed} failed`);
    expect(result.failures).toEqual([]);
    expect(result.failed).toBe(0);
    expect(result.total).toBeGreaterThan(100);
    expect(servedAfterKill.has('api-2')).toBe(false);
    expect([...servedAfterKill].sort()).toEqual(['api-1', 'api-3']);
    // NGINX did the failover: some requests were passed on after the killed instance failed them
    // (in flight at the kill, or refused until max_fails took it out).
    const victimAddr = `127.0.0.1:${victim.port}`;
    const retried = (await nginx.accessLog()).split('\n').filter((l) => l.includes(`upstream=${victimAddr}, `));
    console.log(`kill test: ${retried.length} requests retried on another instance by NGINX`);
    expect(retried.length).toBeGreaterThan(0);
  });
});
