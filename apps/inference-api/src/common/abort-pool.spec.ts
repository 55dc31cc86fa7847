import { describe, expect, it } from 'vitest';
import { AbortControllerPool } from './abort-pool.js';

describe('AbortControllerPool', () => {
  it('hands back a released controller, in the state of a new one', () => {
    const pool = new AbortControllerPool();
    const first = pool.acquire();
    const listener = () => undefined;
    first.signal.addEventListener('abort', listener);
    first.signal.removeEventListener('abort', listener);
    pool.release(first);
    expect(pool.size).toBe(1);
    const again = pool.acquire();
    expect(again).toBe(first);
    expect([again.signal.aborted, again.signal.reason]).toEqual([false, undefined]);
  });

  it('never recycles an aborted signal', () => {
    const pool = new AbortControllerPool();
    const controller = pool.acquire();
    controller.abort();
    pool.release(controller);
    expect(pool.size).toBe(0);
    expect(pool.acquire().signal.aborted).toBe(false);
  });

  it('never recycles a signal somebody still listens to (a leaked listener must not fire for a later request)', () => {
    const pool = new AbortControllerPool();
    const controller = pool.acquire();
    let fired = 0;
    controller.signal.addEventListener('abort', () => fired++);
    pool.release(controller);
    expect(pool.size).toBe(0);
    const next = pool.acquire();
    expect(next).not.toBe(controller);
    next.abort();
    expect(fired).toBe(0);
  });

  it('is bounded', () => {
    const pool = new AbortControllerPool(2);
    const controllers = [pool.acquire(), pool.acquire(), pool.acquire()];
    for (const c of controllers) pool.release(c);
    expect(pool.size).toBe(2);
  });
});
