import { type FakeUpstream, startFakeUpstream } from '@infer/model-providers/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type ApiServer, startApiServer } from '../support/api-server.js';
import { chatOnce, chatStream, sleep } from '../support/load.js';

/** The router's cooldown for this suite: short, so that "after the cooldown" is quick. */
const COOLDOWN_MS = 1_000;
const TOKENS = 4;

interface ProvidersBody {
  details: Record<string, { status: string; router?: { weight: number; priority: number; coolingDownForMs: number; consecutiveFailures: number } }>;
}

/**
 * Deployment priorities: model `m` is served by `primary` (priority 0) and, only while it is cooling
 * down after failures, by `fallback` (priority 1, and a weight that would win without tiers).
 */
describe('fallback tiers (deployment priority)', () => {
  let primary: FakeUpstream;
  let fallback: FakeUpstream;
  let server: ApiServer;
  let n = 0;

  /** `count` requests (chat, every third one streamed); every one must be a complete 200. */
  async function requests(count: number, concurrency = 1): Promise<void> {
    let next = 0;
    const worker = async () => {
      while (next < count) {
        const i = next++;
        const content = `fallback e2e ${n++}`;
        if (i % 3 === 2) {
          const outcome = await chatStream(server.url, content);
          expect(outcome.status, outcome.text.slice(0, 300)).toBe(200);
          expect(outcome.done).toBe(true);
          expect(outcome.deltas).toBe(TOKENS);
        } else {
          await chatOnce(server.url, content); // throws unless 200 with a completion
        }
      }
    };
    await Promise.all(Array.from({ length: concurrency }, worker));
  }

  async function providers(): Promise<ProvidersBody> {
    const res = await fetch(`${server.url}/health/providers`, { signal: AbortSignal.timeout(10_000) });
    return (await res.json()) as ProvidersBody;
  }

  function resetCounters(): void {
    primary.reset();
    fallback.reset();
  }

  beforeAll(async () => {
    [primary, fallback] = await Promise.all([startFakeUpstream({ tokens: TOKENS }), startFakeUpstream({ tokens: TOKENS })]);
    const deployment = (url: string, extra: string) =>
      `      - provider: openai-compatible\n        baseUrl: ${url}\n        model: fake\n        connectTimeoutMs: 1000\n${extra}`;
    server = await startApiServer({
      env: { CACHE_ENABLED: 'false' },
      modelsYaml:
        `models:\n  - name: m\n    deployments:\n` +
        deployment(primary.url, '') +
        deployment(fallback.url, '        priority: 1\n        weight: 10\n') +
        `router:\n  cooldownMs: ${COOLDOWN_MS}\n`,
    });
  });

  afterAll(async () => {
    await server?.stop();
    await Promise.all([primary?.close(), fallback?.close()]);
  });

  it('sends every request to the healthy primary and none to the fallback, even under concurrency', async () => {
    resetCounters();
    await requests(12, 4);
    expect(primary.requestCount).toBe(12);
    expect(fallback.requestCount).toBe(0);

    const body = await providers();
    expect(body.details['m#0']?.router).toMatchObject({ weight: 1, priority: 0, consecutiveFailures: 0 });
    expect(body.details['m#1']?.router).toMatchObject({ weight: 10, priority: 1, consecutiveFailures: 0 });
  });

  it('answers 200 from the fallback while the primary answers 503, trying the primary once per cooldown', async () => {
    resetCounters();
    primary.configure({ failNext: { count: 1_000, status: 503 } });
    const started = Date.now();
    await requests(9);
    const elapsed = Date.now() - started;
    expect(fallback.requestCount).toBe(9);
    // The first request tried the primary and then the fallback; while the primary cools down it is
    // skipped. (A slow machine may outlast a cooldown: then the primary gets one more try per cooldown.)
    expect(primary.requestCount).toBeGreaterThanOrEqual(1);
    expect(primary.requestCount).toBeLessThanOrEqual(1 + Math.floor(elapsed / COOLDOWN_MS));

    const body = await providers();
    expect(body.details['m#0']?.router?.consecutiveFailures).toBe(primary.requestCount);
    expect(body.details['m#1']?.router?.consecutiveFailures).toBe(0);
  });

  it('returns to the primary once it is repaired and its cooldown is over', async () => {
    resetCounters(); // clears the injected failure too
    await sleep(COOLDOWN_MS + 200);
    await requests(6, 2);
    expect(primary.requestCount).toBe(6);
    expect(fallback.requestCount).toBe(0);
    expect((await providers()).details['m#0']?.router).toMatchObject({ coolingDownForMs: 0, consecutiveFailures: 0 });
  });

  it('answers from the fallback while the primary refuses connections, and goes back once it restarts', async () => {
    const port = primary.port;
    await primary.close();
    fallback.reset();
    await requests(6);
    expect(fallback.requestCount).toBe(6);

    primary = await startFakeUpstream({ port, tokens: TOKENS });
    fallback.reset();
    await sleep(COOLDOWN_MS + 200);
    await requests(6);
    expect(primary.requestCount).toBe(6);
    expect(fallback.requestCount).toBe(0);
  });
});
