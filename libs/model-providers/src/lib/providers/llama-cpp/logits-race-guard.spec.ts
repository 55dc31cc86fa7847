import type { LlamaContext } from 'node-llama-cpp';
import { describe, expect, it } from 'vitest';
import { guardLogitsReorderRace } from './logits-race-guard.js';

/** A stand-in for node-llama-cpp's native context: methods on the prototype, read-only like N-API's. */
function fakeContext() {
  const events: string[] = [];
  const pending: Array<() => void> = [];
  class Native {}
  Object.defineProperty(Native.prototype, 'decodeBatch', {
    value: async () => {
      events.push('decode');
    },
    writable: false,
  });
  Object.defineProperty(Native.prototype, 'sampleToken', {
    value: (index: number) => {
      events.push(`start ${index}`);
      return new Promise<number>((resolve) =>
        pending.push(() => {
          events.push(`end ${index}`);
          resolve(index);
        }),
      );
    },
    writable: false,
  });
  const native = new Native() as { decodeBatch(): Promise<void>; sampleToken(index: number): Promise<number> };
  return { context: { _ctx: native } as unknown as LlamaContext, native, events, pending };
}

const tick = () => new Promise((resolve) => setImmediate(resolve));

describe('guardLogitsReorderRace', () => {
  it('after a decode, runs the first sampling alone, then the rest in parallel', async () => {
    const { context, native, events, pending } = fakeContext();
    expect(guardLogitsReorderRace(context)).toBe(true);
    expect(guardLogitsReorderRace(context)).toBe(true); // idempotent

    await native.decodeBatch();
    const results = [native.sampleToken(0), native.sampleToken(1), native.sampleToken(2)];
    await tick();
    expect(events).toEqual(['decode', 'start 0']);
    pending.shift()?.();
    await tick();
    expect(events).toEqual(['decode', 'start 0', 'end 0', 'start 1', 'start 2']);
    pending.splice(0).forEach((finish) => finish());
    expect(await Promise.all(results)).toEqual([0, 1, 2]);

    // No decode since: no gate.
    const free = [native.sampleToken(3), native.sampleToken(4)];
    await tick();
    expect(events.slice(-2)).toEqual(['start 3', 'start 4']);
    pending.splice(0).forEach((finish) => finish());
    await Promise.all(free);
  });

  it('leaves an unknown shape alone', () => {
    expect(guardLogitsReorderRace({} as LlamaContext)).toBe(false);
    expect(guardLogitsReorderRace({ _ctx: { decodeBatch: 1 } } as unknown as LlamaContext)).toBe(false);
  });
});
