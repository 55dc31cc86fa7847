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
