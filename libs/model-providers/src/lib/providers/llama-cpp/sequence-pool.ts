import { abortedError } from '../../contract/errors.js';

interface Waiter<T> {
  readonly resolve: (item: T) => void;
  readonly reject: (error: unknown) => void;
  readonly cleanup: () => void;
}

/**
 * A fixed set of reusable items (llama.cpp context sequences) handed out one request at a time.
 * When all are busy, callers wait in a FIFO queue of at most `maxWaiting` (beyond it `acquire`
 * rejects at once with `overloaded()`); a waiter whose signal aborts leaves the queue at once
 * (rejecting with `abortedError()`), so it never takes an item nobody will use.
 */
export class SequencePool<T> {
  private readonly idle: T[];
  private readonly waiters: Waiter<T>[] = [];
  private closedWith: unknown = undefined;
  private closed = false;
  /** Number of items the pool was created with. */
  readonly size: number;

  constructor(
    items: readonly T[],
    private readonly maxWaiting = Number.POSITIVE_INFINITY,
    private readonly overloaded: () => unknown = () => new Error('the queue is full'),
  ) {
    this.idle = [...items];
    this.size = items.length;
  }

  /** Items not handed out. */
  get available(): number {
    return this.idle.length;
  }

  /** Callers waiting for an item. */
  get waiting(): number {
    return this.waiters.length;
  }

  /**
   * An idle item (with `score`: the one scoring highest, e.g. the longest shared prompt prefix), or
   * a place in the queue. Released items go to the longest-waiting caller whatever they score.
   */
  acquire(signal?: AbortSignal, score?: (item: T) => number): Promise<T> {
    if (this.closed) return Promise.reject(this.closedWith);
    if (signal?.aborted) return Promise.reject(abortedError(signal.reason));
    const item = score === undefined || this.idle.length <= 1 ? this.idle.pop() : this.takeBest(score);
    if (item !== undefined) return Promise.resolve(item);
    if (this.waiters.length >= this.maxWaiting) return Promise.reject(this.overloaded());

    return new Promise<T>((resolve, reject) => {
      const onAbort = (): void => {
        const index = this.waiters.indexOf(waiter);
        if (index >= 0) this.waiters.splice(index, 1);
        reject(abortedError(signal?.reason));
      };
      const waiter: Waiter<T> = {
        resolve,
        reject,
        cleanup: () => signal?.removeEventListener('abort', onAbort),
      };
      signal?.addEventListener('abort', onAbort, { once: true });
      this.waiters.push(waiter);
    });
  }

  private takeBest(score: (item: T) => number): T | undefined {
    let best = this.idle.length - 1;
    let bestScore = Number.NEGATIVE_INFINITY;
    // From the most recently released: on ties it wins, as with pop().
    for (let i = this.idle.length - 1; i >= 0; i--) {
      const value = score(this.idle[i] as T);
      if (value > bestScore) {
        bestScore = value;
        best = i;
      }
    }
    return this.idle.splice(best, 1)[0];
  }

  /** Returns an item (or its replacement): the longest-waiting caller gets it, else it goes back to the idle set. */
  release(item: T): void {
    const waiter = this.waiters.shift();
    if (waiter) {
      waiter.cleanup();
      waiter.resolve(item);
      return;
    }
    this.idle.push(item);
  }

  /** Rejects every waiter and every later `acquire` with `error`. */
  close(error: unknown): void {
    this.closed = true;
    this.closedWith = error;
    for (const waiter of this.waiters.splice(0)) {
      waiter.cleanup();
      waiter.reject(error);
    }
  }
}
