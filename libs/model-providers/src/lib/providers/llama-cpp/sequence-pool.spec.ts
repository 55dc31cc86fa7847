import { describe, expect, it } from 'vitest';
import { ModelProviderError } from '../../contract/errors.js';
import { SequencePool } from './sequence-pool.js';

describe('SequencePool', () => {
  it('hands out idle items at once, then queues callers in FIFO order', async () => {
    const pool = new SequencePool(['a', 'b']);
    const first = await pool.acquire();
    const second = await pool.acquire();
    expect([first, second].sort()).toEqual(['a', 'b']);
    expect(pool.available).toBe(0);

    const served: number[] = [];
    const waiters = [1, 2, 3].map((n) => pool.acquire().then((item) => (served.push(n), item)));
    expect(pool.waiting).toBe(3);
    pool.release(first);
    pool.release(second);
    await Promise.all(waiters.slice(0, 2));
    expect(served).toEqual([1, 2]);
    pool.release(await waiters[0]!);
    expect(await waiters[2]).toBe(first);
    expect(served).toEqual([1, 2, 3]);
  });

  it('a waiter whose signal aborts leaves the queue and rejects with aborted; the next waiter gets the item', async () => {
    const pool = new SequencePool(['only']);
    const item = await pool.acquire();
    const controller = new AbortController();
    const aborted = pool.acquire(controller.signal);
    const next = pool.acquire();
    controller.abort();
    await expect(aborted).rejects.toMatchObject({ code: 'aborted' });
    expect(pool.waiting).toBe(1);
    pool.release(item);
    expect(await next).toBe('only');
    await expect(pool.acquire(AbortSignal.abort())).rejects.toBeInstanceOf(ModelProviderError);
  });

  it('beyond maxWaiting queued callers, acquire rejects at once with the overloaded error', async () => {
    const pool = new SequencePool(['only'], 1, () => new Error('full'));
    const item = await pool.acquire();
    const queued = pool.acquire();
    await expect(pool.acquire()).rejects.toThrow('full');
    expect(pool.waiting).toBe(1);
    pool.release(item);
    expect(await queued).toBe('only');
    // A free item is handed out whatever the queue bound: maxWaiting 0 never queues.
    const none = new SequencePool(['x'], 0, () => new Error('busy'));
    const x = await none.acquire();
    await expect(none.acquire()).rejects.toThrow('busy');
    none.release(x);
    expect(await none.acquire()).toBe('x');
  });

  it('with a score, hands out the idle item scoring highest (ties: the most recently released)', async () => {
    const pool = new SequencePool(['a', 'bb', 'ccc', 'dd']);
    expect(await pool.acquire(undefined, (item) => item.length)).toBe('ccc');
    expect(await pool.acquire(undefined, (item) => item.length)).toBe('dd');
    expect(await pool.acquire(undefined, () => 0)).toBe('bb');
    pool.release('ccc');
    expect(await pool.acquire(undefined, (item) => -item.length)).toBe('a');
  });

  it('close() rejects waiters and later acquires with the given error', async () => {
    const pool = new SequencePool([1]);
    await pool.acquire();
    const waiting = pool.acquire();
    const error = new Error('closed');
    pool.close(error);
    await expect(waiting).rejects.toBe(error);
    await expect(pool.acquire()).rejects.toBe(error);
  });
});
