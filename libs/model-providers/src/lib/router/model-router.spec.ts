import { describe, expect, it } from 'vitest';
import { ModelProviderError } from '../contract/errors.js';
import type { GenerationResult, ModelProvider, StreamPart } from '../contract/model-provider.js';
import { type Deployment, ModelRouter } from './model-router.js';

type Behaviour = () => Promise<GenerationResult>;

function fakeProvider(label: string, behaviour: { chat?: Behaviour; stream?: () => AsyncIterable<StreamPart> } = {}): ModelProvider & { calls: number } {
  const ok: GenerationResult = { text: label, finishReason: 'stop', usage: { promptTokens: 1, completionTokens: 1 } };
  const provider = {
    specificationVersion: 'v1' as const,
    kind: 'fake',
    label,
    capabilities: { chat: true, completion: true, streaming: true, embeddings: false },
    calls: 0,
    async chat() {
      provider.calls++;
      return behaviour.chat ? behaviour.chat() : ok;
    },
    async complete() {
      provider.calls++;
      return ok;
    },
    streamChat() {
      provider.calls++;
      return behaviour.stream ? behaviour.stream() : (async function* () {
        yield { type: 'delta' as const, text: label };
        yield { type: 'finish' as const, finishReason: 'stop' as const, usage: ok.usage };
      })();
    },
    streamComplete() {
      return provider.streamChat();
    },
    async health() {
      return { healthy: true };
    },
    async close() {},
  };
  return provider;
}

function deployment(modelName: string, provider: ModelProvider, weight = 1, i = 0): Deployment {
  return { id: `${modelName}#${i}`, modelName, provider, weight };
}

/** A deployment of model `m` in fallback tier `priority`. */
function tiered(provider: ModelProvider, priority: number, i: number, weight = 1): Deployment {
  return { ...deployment('m', provider, weight, i), priority };
}

/** A chat behaviour that answers only when its gate is opened (to keep requests outstanding). */
function gated(gates: Array<() => void>): Behaviour {
  return () => new Promise((resolve) => gates.push(() => resolve({ text: 'x', finishReason: 'stop', usage: { promptTokens: 0, completionTokens: 0 } })));
}

/** A chat behaviour that fails (retryably) while `failing()` is true, and records each call's label in `log`. */
function flaky(label: string, failing: () => boolean, log: string[]): Behaviour {
  return () => {
    log.push(label);
    return failing() ? upstreamDown() : Promise.resolve({ text: label, finishReason: 'stop', usage: { promptTokens: 0, completionTokens: 0 } });
  };
}

const chat = (router: ModelRouter) => router.run('m', (p) => p.chat({ messages: [] }));

const upstreamDown = () => Promise.reject(new ModelProviderError('connection refused', { code: 'upstream_unavailable' }));

describe('ModelRouter', () => {
  it('spreads concurrent requests by least outstanding requests', async () => {
    const gates: Array<() => void> = [];
    const slow: Behaviour = () =>
      new Promise((resolve) => gates.push(() => resolve({ text: 'x', finishReason: 'stop', usage: { promptTokens: 0, completionTokens: 0 } })));
    const a = fakeProvider('a', { chat: slow });
    const b = fakeProvider('b', { chat: slow });
    const router = new ModelRouter([deployment('m', a, 1, 0), deployment('m', b, 1, 1)]);
    const pending = Array.from({ length: 6 }, () => router.run('m', (p) => p.chat({ messages: [] })));
    await new Promise((r) => setImmediate(r));
    expect([a.calls, b.calls]).toEqual([3, 3]);
    gates.forEach((open) => open());
    await Promise.all(pending);
  });

  it('honours weights', async () => {
    const gates: Array<() => void> = [];
    const slow: Behaviour = () =>
      new Promise((resolve) => gates.push(() => resolve({ text: 'x', finishReason: 'stop', usage: { promptTokens: 0, completionTokens: 0 } })));
    const heavy = fakeProvider('heavy', { chat: slow });
    const light = fakeProvider('light', { chat: slow });
    const router = new ModelRouter([deployment('m', heavy, 3, 0), deployment('m', light, 1, 1)]);
    const pending = Array.from({ length: 8 }, () => router.run('m', (p) => p.chat({ messages: [] })));
    await new Promise((r) => setImmediate(r));
    expect(heavy.calls).toBe(6);
    expect(light.calls).toBe(2);
    gates.forEach((open) => open());
    await Promise.all(pending);
  });

  it('retries a retryable failure on another deployment and cools the failed one down', async () => {
    let now = 1_000;
    const broken = fakeProvider('broken', { chat: upstreamDown });
    const good = fakeProvider('good');
    const router = new ModelRouter([deployment('m', broken, 1, 0), deployment('m', good, 1, 1)], { cooldownMs: 5_000, now: () => now });
    const first = await router.run('m', (p) => p.chat({ messages: [] }));
    const second = await router.run('m', (p) => p.chat({ messages: [] }));
    expect([first.text, second.text]).toEqual(['good', 'good']);
    // `broken` was tried at most once: it is cooling down.
    expect(broken.calls).toBe(1);
    expect(router.status('m')[0]!.coolingDownForMs).toBe(5_000);
    now += 5_001;
    await router.run('m', (p) => p.chat({ messages: [] }));
    await router.run('m', (p) => p.chat({ messages: [] }));
    expect(broken.calls).toBe(2);
  });

  it('does not retry non-retryable errors', async () => {
    const bad = fakeProvider('bad', { chat: () => Promise.reject(new ModelProviderError('bad param', { code: 'invalid_request' })) });
    const good = fakeProvider('good');
    const router = new ModelRouter([deployment('m', bad, 1, 0), deployment('m', good, 1, 1)]);
    await expect(router.run('m', (p) => p.chat({ messages: [] }))).rejects.toMatchObject({ code: 'invalid_request' });
    expect(good.calls).toBe(0);
  });

  it('throws the last error when every deployment failed', async () => {
    const a = fakeProvider('a', { chat: upstreamDown });
    const b = fakeProvider('b', { chat: upstreamDown });
    const router = new ModelRouter([deployment('m', a, 1, 0), deployment('m', b, 1, 1)]);
    await expect(router.run('m', (p) => p.chat({ messages: [] }))).rejects.toMatchObject({ code: 'upstream_unavailable' });
    expect(a.calls + b.calls).toBe(2);
  });

  it('still tries a cooling deployment when it is the only one', async () => {
    let fail = true;
    const only = fakeProvider('only', { chat: () => (fail ? upstreamDown() : Promise.resolve({ text: 'ok', finishReason: 'stop', usage: { promptTokens: 0, completionTokens: 0 } })) });
    const router = new ModelRouter([deployment('m', only)]);
    await expect(router.run('m', (p) => p.chat({ messages: [] }))).rejects.toBeInstanceOf(ModelProviderError);
    fail = false;
    await expect(router.run('m', (p) => p.chat({ messages: [] }))).resolves.toMatchObject({ text: 'ok' });
  });

  it('retries a stream that fails before its first part, not after', async () => {
    const failsAtOnce = fakeProvider('early', {
      stream: () => (async function* (): AsyncGenerator<StreamPart> {
        throw new ModelProviderError('reset', { code: 'upstream_unavailable' });
      })(),
    });
    const good = fakeProvider('good');
    const router = new ModelRouter([deployment('m', failsAtOnce, 1, 0), deployment('m', good, 1, 1)]);
    const parts: StreamPart[] = [];
    for await (const part of router.stream('m', (p) => p.streamChat({ messages: [] }))) parts.push(part);
    expect(parts[0]).toEqual({ type: 'delta', text: 'good' });

    const failsLate = fakeProvider('late', {
      stream: () => (async function* (): AsyncGenerator<StreamPart> {
        yield { type: 'delta', text: 'partial' };
        throw new ModelProviderError('reset', { code: 'upstream_unavailable' });
      })(),
    });
    const other = fakeProvider('other');
    const router2 = new ModelRouter([deployment('n', failsLate, 1, 0), deployment('n', other, 1, 1)]);
    const seen: string[] = [];
    await expect(async () => {
      for await (const part of router2.stream('n', (p) => p.streamChat({ messages: [] }))) if (part.type === 'delta') seen.push(part.text);
    }).rejects.toMatchObject({ code: 'upstream_unavailable' });
    expect(seen).toEqual(['partial']);
    expect(other.calls).toBe(0);
  });

  it('does not retry after the caller aborted', async () => {
    const controller = new AbortController();
    const a = fakeProvider('a', { chat: () => { controller.abort(); return upstreamDown(); } });
    const b = fakeProvider('b');
    const router = new ModelRouter([deployment('m', a, 1, 0), deployment('m', b, 1, 1)]);
    await expect(router.run('m', (p) => p.chat({ messages: [] }), controller.signal)).rejects.toBeInstanceOf(ModelProviderError);
    expect(b.calls).toBe(0);
  });

  it('releases outstanding counts when a stream consumer stops early', async () => {
    const a = fakeProvider('a');
    const router = new ModelRouter([deployment('m', a)]);
    for await (const part of router.stream('m', (p) => p.streamChat({ messages: [] }))) {
      expect(part.type).toBe('delta');
      break;
    }
    expect(router.status('m')[0]!.outstanding).toBe(0);
  });
});

describe('ModelRouter priority tiers', () => {
  it('sends all traffic to tier 0 while it is healthy, whatever the weights and the load', async () => {
    const gates: Array<() => void> = [];
    const a = fakeProvider('a', { chat: gated(gates) });
    const b = fakeProvider('b', { chat: gated(gates) });
    const paid = fakeProvider('paid', { chat: gated(gates) });
    // Listed first and weighted 100x: still never chosen while a tier-0 deployment is up.
    const router = new ModelRouter([tiered(paid, 1, 0, 100), tiered(a, 0, 1), tiered(b, 0, 2)]);
    const pending = Array.from({ length: 10 }, () => chat(router));
    await new Promise((r) => setImmediate(r));
    expect([a.calls, b.calls, paid.calls]).toEqual([5, 5, 0]);
    gates.forEach((open) => open());
    await Promise.all(pending);
    expect(router.status('m').map((s) => [s.id, s.priority, s.weight])).toEqual([
      ['m#0', 1, 100],
      ['m#1', 0, 1],
      ['m#2', 0, 1],
    ]);
  });

  it('falls back while the primary cools down, and returns to it after the cooldown', async () => {
    let now = 1_000;
    let primaryDown = true;
    const log: string[] = [];
    const primary = fakeProvider('primary', { chat: flaky('primary', () => primaryDown, log) });
    const fallback = fakeProvider('fallback', { chat: flaky('fallback', () => false, log) });
    const router = new ModelRouter([tiered(primary, 0, 0), tiered(fallback, 1, 1)], { cooldownMs: 5_000, now: () => now });

    // The primary fails: the same request is answered by the fallback.
    expect((await chat(router)).text).toBe('fallback');
    expect(log).toEqual(['primary', 'fallback']);
    // While it cools down, requests go straight to the fallback.
    for (let i = 0; i < 4; i++) expect((await chat(router)).text).toBe('fallback');
    expect(primary.calls).toBe(1);
    expect(router.status('m')[0]).toMatchObject({ priority: 0, coolingDownForMs: 5_000, consecutiveFailures: 1 });

    // Cooled down but still broken: tried once more (real traffic is the probe), the fallback answers.
    now += 5_001;
    log.length = 0;
    expect((await chat(router)).text).toBe('fallback');
    expect(log).toEqual(['primary', 'fallback']);

    // Repaired: after the next cooldown all traffic is back on the primary.
    primaryDown = false;
    now += 5_001;
    log.length = 0;
    for (let i = 0; i < 4; i++) expect((await chat(router)).text).toBe('primary');
    expect(log).toEqual(['primary', 'primary', 'primary', 'primary']);
    expect(router.status('m')[0]).toMatchObject({ coolingDownForMs: 0, consecutiveFailures: 0 });
  });

  it('retries within the tier first, then in the next tier, on one request (default maxAttempts)', async () => {
    const log: string[] = [];
    const a = fakeProvider('a', { chat: flaky('a', () => true, log) });
    const b = fakeProvider('b', { chat: flaky('b', () => true, log) });
    const c = fakeProvider('c', { chat: flaky('c', () => false, log) });
    const router = new ModelRouter([tiered(c, 1, 0), tiered(a, 0, 1), tiered(b, 0, 2)], { now: () => 0 });
    expect((await chat(router)).text).toBe('c');
    expect(log.slice(0, 2).sort()).toEqual(['a', 'b']);
    expect(log[2]).toBe('c');
    expect(log).toHaveLength(3);
  });

  it('keeps a retry in the tier while the tier has another deployment to try', async () => {
    let now = 0;
    let aDown = true;
    const log: string[] = [];
    const a = fakeProvider('a', { chat: flaky('a', () => aDown, log) });
    const b = fakeProvider('b', { chat: flaky('b', () => true, log) });
    const c = fakeProvider('c', { chat: flaky('c', () => false, log) });
    const router = new ModelRouter([tiered(a, 0, 0), tiered(b, 0, 1), tiered(c, 1, 2)], { cooldownMs: 1_000, now: () => now });
    await chat(router); // a and b fail and cool down, c answers
    aDown = false;
    now = 1_001; // a's and b's cooldowns are over; b still fails
    log.length = 0;
    // Whichever tier-0 deployment goes first, the request ends on a (tier 0), never on c.
    for (let i = 0; i < 2; i++) expect((await chat(router)).text).toBe('a');
    expect(log).not.toContain('c');
  });

  it('falls back for a stream that fails before its first part', async () => {
    const broken = fakeProvider('broken', {
      stream: () => (async function* (): AsyncGenerator<StreamPart> {
        throw new ModelProviderError('reset', { code: 'upstream_unavailable' });
      })(),
    });
    const fallback = fakeProvider('fallback');
    const router = new ModelRouter([tiered(fallback, 1, 0), tiered(broken, 0, 1)], { now: () => 0 });
    const parts: StreamPart[] = [];
    for await (const part of router.stream('m', (p) => p.streamChat({ messages: [] }))) parts.push(part);
    expect(parts[0]).toEqual({ type: 'delta', text: 'fallback' });
    expect([broken.calls, fallback.calls]).toEqual([1, 1]);
    expect(router.status('m').map((s) => s.outstanding)).toEqual([0, 0]);
  });

  it('counts every tier against maxAttempts', async () => {
    const log: string[] = [];
    const primaries = ['a', 'b', 'c'].map((label) => fakeProvider(label, { chat: flaky(label, () => true, log) }));
    const fallback = fakeProvider('f', { chat: flaky('f', () => false, log) });
    const router = new ModelRouter([...primaries.map((p, i) => tiered(p, 0, i)), tiered(fallback, 1, 3)], { now: () => 0 });
    // Three primaries use up the default 3 attempts: the fallback is not reached on this request...
    await expect(chat(router)).rejects.toMatchObject({ code: 'upstream_unavailable' });
    expect(log.sort()).toEqual(['a', 'b', 'c']);
    // ...but they are all cooling down now, so the next request goes to it at once.
    log.length = 0;
    expect((await chat(router)).text).toBe('f');
    expect(log).toEqual(['f']);

    const log2: string[] = [];
    const x = fakeProvider('x', { chat: flaky('x', () => true, log2) });
    const y = fakeProvider('y', { chat: flaky('y', () => false, log2) });
    const single = new ModelRouter([tiered(x, 0, 0), tiered(y, 1, 1)], { maxAttempts: 1, now: () => 0 });
    await expect(chat(single)).rejects.toMatchObject({ code: 'upstream_unavailable' });
    expect(log2).toEqual(['x']);
  });

  it('when every deployment cools down, takes the one whose cooldown ends first, the better tier among equals', async () => {
    let now = 0;
    const log: string[] = [];
    const primary = fakeProvider('primary', { chat: flaky('primary', () => true, log) });
    const fallback = fakeProvider('fallback', { chat: flaky('fallback', () => true, log) });
    const router = new ModelRouter([tiered(fallback, 1, 0), tiered(primary, 0, 1)], { cooldownMs: 1_000, now: () => now });
    // Both fail at the same instant, so their cooldowns end together: the primary is tried first,
    // whatever deployment the rotation starts the scan at.
    for (let i = 0; i < 3; i++) {
      log.length = 0;
      await expect(chat(router)).rejects.toBeInstanceOf(ModelProviderError);
      expect(log).toEqual(['primary', 'fallback']);
    }

    // Unequal cooldowns (one attempt per request): the one that ends first, whatever its tier.
    log.length = 0;
    now = 0;
    const single = new ModelRouter([tiered(primary, 0, 0), tiered(fallback, 1, 1)], { cooldownMs: 1_000, maxAttempts: 1, now: () => now });
    await expect(chat(single)).rejects.toBeInstanceOf(ModelProviderError); // primary until 1000
    now = 500;
    await expect(chat(single)).rejects.toBeInstanceOf(ModelProviderError); // fallback until 1500
    now = 1_001;
    await expect(chat(single)).rejects.toBeInstanceOf(ModelProviderError); // primary again, until 2001
    now = 1_002;
    await expect(chat(single)).rejects.toBeInstanceOf(ModelProviderError); // all cooling: the fallback ends first
    expect(log).toEqual(['primary', 'fallback', 'primary', 'fallback']);
  });

  it('rejects a priority that is not an integer >= 0', () => {
    const p = fakeProvider('p');
    expect(() => new ModelRouter([tiered(p, -1, 0)])).toThrow(/priority must be an integer >= 0/);
    expect(() => new ModelRouter([tiered(p, 0.5, 0)])).toThrow(/priority must be an integer >= 0/);
    expect(new ModelRouter([deployment('m', p)]).status('m')[0]?.priority).toBe(0);
  });
});
