import { request } from 'node:http';
import { type FakeUpstream, startFakeUpstream } from '@infer/model-providers/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type ApiServer, startApiServer } from '../support/api-server.js';
import { fakeModelsYaml } from '../support/load.js';

/** A client that disconnects aborts the upstream call: the fake upstream sees its connection close. */
describe('client abort', () => {
  let server: ApiServer;
  let upstream: FakeUpstream;

  beforeAll(async () => {
    upstream = await startFakeUpstream({ tokens: 200, interTokenDelayMs: 20 });
    server = await startApiServer({
      env: { CACHE_ENABLED: 'false' },
      modelsYaml: fakeModelsYaml(upstream.url),
    });
  });

  afterAll(async () => {
    await server?.stop();
    await upstream?.close();
  });

  /** Sends a request and destroys the socket once `afterBytes` bytes of the response arrived (0: right after sending). */
  function sendAndDrop(path: string, body: unknown, afterBytes: number): Promise<number> {
    return new Promise((resolve, reject) => {
      let received = 0;
      const req = request(`${server.url}${path}`, { method: 'POST', headers: { 'content-type': 'application/json' } }, (res) => {
        res.on('data', (chunk: Buffer) => {
          received += chunk.length;
          if (received >= afterBytes) {
            req.destroy();
            resolve(received);
          }
        });
      });
      req.on('error', () => resolve(received));
      req.end(JSON.stringify(body));
      if (afterBytes === 0) setTimeout(() => { req.destroy(); resolve(0); }, 150);
      req.setTimeout(10_000, () => reject(new Error('timeout')));
    });
  }

  it('mid-stream: the upstream stream is closed long before it would have finished', async () => {
    upstream.reset();
    const started = Date.now();
    const received = await sendAndDrop('/v1/chat/completions', { model: 'm', messages: [{ role: 'user', content: 'long story' }], stream: true }, 200);
    expect(received).toBeGreaterThanOrEqual(200);
    await upstream.waitForAbort({ count: 1, timeoutMs: 2_000 });
    expect(upstream.abortedStreams).toBe(1);
    // 200 tokens x 20 ms = 4 s for the full reply; the abort reached upstream well before that.
    expect(Date.now() - started).toBeLessThan(3_000);
    await upstream.waitForIdle({ timeoutMs: 2_000 });
    expect(upstream.inFlight).toBe(0);
  });

  it("n > 1: every choice's upstream stream is closed when the client leaves, streamed or not", async () => {
    upstream.reset();
    const started = Date.now();
    const body = { model: 'm', messages: [{ role: 'user', content: 'three long stories' }], temperature: 1, n: 3 };
    await sendAndDrop('/v1/chat/completions', { ...body, stream: true }, 300);
    await upstream.waitForAbort({ count: 3, timeoutMs: 2_000 });
    expect(upstream.abortedStreams).toBe(3);
    expect(Date.now() - started).toBeLessThan(3_000);
    await upstream.waitForIdle({ timeoutMs: 2_000 });
    upstream.reset();
    upstream.configure({ latencyMs: 2_000 });
    await sendAndDrop('/v1/chat/completions', body, 0);
    await upstream.waitForAbort({ count: 3, timeoutMs: 1_500 });
    upstream.configure({ latencyMs: 0 });
    await upstream.waitForIdle({ timeoutMs: 2_000 });
  });

  it('before the first byte of a non-streamed request: the upstream call is aborted too', async () => {
    upstream.reset();
    upstream.configure({ latencyMs: 2_000 });
    await sendAndDrop('/v1/chat/completions', { model: 'm', messages: [{ role: 'user', content: 'slow' }] }, 0);
    await upstream.waitForAbort({ count: 1, timeoutMs: 2_000 });
    expect(upstream.abortedRequests + upstream.abortedStreams).toBeGreaterThanOrEqual(1);
    upstream.configure({ latencyMs: 0 });
  });

  it('the server keeps serving afterwards', async () => {
    const res = await fetch(`${server.url}/v1/models`);
    expect(res.status).toBe(200);
  });
});
