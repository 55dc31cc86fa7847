import { describe, expect, it } from 'vitest';
import { BackgroundResponses, stopReasonOf } from './background-responses.js';

/** A work that runs until its signal fires, and records why. */
function held() {
  const seen: string[] = [];
  const work = (signal: AbortSignal) =>
    new Promise<void>((resolve) => {
      signal.addEventListener('abort', () => {
        seen.push(stopReasonOf(signal));
        resolve();
      });
    });
  return { seen, work };
}

describe('BackgroundResponses', () => {
  it('runs works detached, cancels one by id, and forgets each once it settles', async () => {
    const runner = new BackgroundResponses();
    const a = held();
    const b = held();
    runner.start('a', a.work);
    runner.start('b', b.work);
    expect(runner.size).toBe(2);
    expect(runner.cancel('a')).toBe(true);
    await new Promise((r) => setImmediate(r));
    expect(a.seen).toEqual(['cancelled']);
    expect(b.seen).toEqual([]);
    expect(runner.size).toBe(1);
    expect(runner.cancel('a')).toBe(false);
    expect(runner.cancel('unknown')).toBe(false);
    await runner.shutdown();
    expect(b.seen).toEqual(['shutdown']);
    expect(runner.size).toBe(0);
  });

  it('shutdown waits for every work to settle; a failing work does not fail it; after it, new works stop at once', async () => {
    const runner = new BackgroundResponses();
    let recorded = false;
    runner.start('slow', (signal) => new Promise<void>((resolve) => signal.addEventListener('abort', () => setTimeout(() => ((recorded = true), resolve()), 30))));
    runner.start('bad', () => Promise.reject(new Error('boom')));
    await runner.shutdown();
    expect(recorded).toBe(true);
    // After a shutdown a new work starts with its signal already aborted, as a shutdown.
    let reason: string | undefined;
    runner.start('late', async (signal) => {
      reason = signal.aborted ? stopReasonOf(signal) : 'running';
    });
    await new Promise((r) => setImmediate(r));
    expect(reason).toBe('shutdown');
    expect(runner.size).toBe(0);
  });
});
