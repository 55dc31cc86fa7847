import { once } from 'node:events';
import { type FakeUpstream, startFakeUpstream } from '@infer/model-providers/testing';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { type ApiServer, startApiServer } from '../support/api-server.js';
import { chatStream, chatStreamComplete, fakeModelsYaml, sleep } from '../support/load.js';
import { holdRequest } from '../support/raw-http.js';

/** SIGTERM on a real API process while SSE streams are running. */
describe('graceful shutdown', () => {
  let upstream: FakeUpstream;
  let server: ApiServer | undefined;

  beforeAll(async () => {
    // 20 tokens, 100 ms apart: each stream takes ~2 s.
    upstream = await startFakeUpstream({ tokens: 20, interTokenDelayMs: 100 });
  });

  afterEach(async () => {
    await server?.stop(2_000);
    server = undefined;
  });

  afterAll(async () => {
    await upstream?.close();
  });

  const start = (shutdownTimeoutMs: number) =>
    startApiServer({
      env: { SHUTDOWN_TIMEOUT_MS: String(shutdownTimeoutMs), CACHE_ENABLED: 'false', LOG_LEVEL: 'info' },
      modelsYaml: fakeModelsYaml(upstream.url),
    });

  it('lets running streams finish, answers readiness 503 meanwhile, refuses new connections, exits before the deadline', async () => {
    const deadlineMs = 8_000;
    server = await start(deadlineMs);
    const api = server;
    expect((await fetch(`${api.url}/health/ready`)).status).toBe(200);

    // A probe already under way on an open connection when the signal arrives (as a balancer's can be).
    const probe = await holdRequest(api.port, '/health/ready');
    const streams = [0, 1, 2].map((i) => chatStreamComplete(api.url, `drain ${i}`, 20));
    await sleep(600);

    const exited = once(api.process, 'exit') as Promise<[number | null, NodeJS.Signals | null]>;
    const signalledAt = Date.now();
    api.process.kill('SIGTERM');
    await sleep(200);

    const ready = await probe.finish();
    expect(ready.status).toBe(503);
    expect(ready.headers['connection']).toBe('close');
    const body = JSON.parse(ready.body) as { status: string; details: { lifecycle: { status: string; phase: string; reason: string } } };
    expect(body.status).toBe('shutting_down');
    expect(body.details.lifecycle).toMatchObject({ status: 'down', phase: 'draining', reason: 'SIGTERM' });

    // No new connections once draining.
    await expect(fetch(`${api.url}/health/live`)).rejects.toThrow();

    const outcomes = await Promise.all(streams);
    for (const o of outcomes) expect(o).toMatchObject({ status: 200, done: true, deltas: 20 });

    const [code, signal] = await exited;
    const tookMs = Date.now() - signalledAt;
    expect(signal).toBeNull();
    expect(code).toBe(0);
    // The streams needed ~1.4 s more; the process left right after them, well before the deadline.
    expect(tookMs).toBeLessThan(deadlineMs);
    expect(api.output()).toContain('drained: every in-flight request and stream finished');
    expect(api.output()).toContain('shutdown complete');
  });

  it('cuts what still runs at the deadline and exits right after it', async () => {
    server = await start(1_000);
    const api = server;
    const stream = chatStream(api.url, 'too long for the deadline').catch((error: unknown) => error);
    await sleep(300);
    const exited = once(api.process, 'exit') as Promise<[number | null, NodeJS.Signals | null]>;
    const signalledAt = Date.now();
    api.process.kill('SIGTERM');
    const [code] = await exited;
    const tookMs = Date.now() - signalledAt;
    expect(code).toBe(0);
    expect(tookMs).toBeGreaterThanOrEqual(950);
    expect(tookMs).toBeLessThan(4_000);
    const outcome = await stream;
    // Cut: either the read failed or it ended without [DONE].
    if (!(outcome instanceof Error)) expect((outcome as { done: boolean }).done).toBe(false);
    expect(api.output()).toContain('drain deadline reached');
  });
});
