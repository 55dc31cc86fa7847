import { abortedError, type StreamPart } from '@infer/model-providers';
import type { CacheClient } from '../common/client-link.js';

/**
 * One producer, many consumers: the parts of a stream in flight, kept from the first one so a
 * consumer that joins late first gets what it missed, then the rest live. Every consumer sees the
 * same sequence and the same end: a normal end, or the producer's error (never a silent cut).
 */
export class LiveStream {
  private readonly parts: StreamPart[] = [];
  private state: 'open' | 'ended' | 'failed' = 'open';
  private error: unknown;
  private waiters: Array<() => void> = [];

  get settled(): boolean {
    return this.state !== 'open';
  }

  push(part: StreamPart): void {
    if (this.state !== 'open') return;
    this.parts.push(part);
    this.wake();
  }

  end(): void {
    if (this.state !== 'open') return;
    this.state = 'ended';
    this.wake();
  }

  fail(error: unknown): void {
    if (this.state !== 'open') return;
    this.state = 'failed';
    this.error = error;
    this.wake();
  }

  /**
   * A consumer, from the first part. Once `client` is gone the iterator throws an abort error instead
   * of waiting. `onClose` runs exactly once, when the consumer is done (end, error, client gone, or
   * `return()` from a `for await` / writeSse that stopped early).
   */
  subscribe(client: Pick<CacheClient, 'gone' | 'onGone'>, onClose: () => void): AsyncIterableIterator<StreamPart> {
    let index = 0;
    let closed = false;
    let wakeMe: (() => void) | undefined;
    const unregister = client.onGone(() => wakeMe?.());
    const close = () => {
      if (closed) return;
      closed = true;
      unregister();
      onClose();
    };
    const done: IteratorResult<StreamPart> = { done: true, value: undefined };
    const iterator: AsyncIterableIterator<StreamPart> = {
      [Symbol.asyncIterator]: () => iterator,
      next: async () => {
        for (;;) {
          if (closed) return done;
          if (client.gone) {
            close();
            throw abortedError();
          }
          if (index < this.parts.length) return { done: false, value: this.parts[index++] as StreamPart };
          if (this.state === 'ended') {
            close();
            return done;
          }
          if (this.state === 'failed') {
            close();
            throw this.error;
          }
          await new Promise<void>((resolve) => {
            wakeMe = resolve;
            this.waiters.push(resolve);
          });
          wakeMe = undefined;
        }
      },
      return: async () => {
        close();
        return done;
      },
    };
    return iterator;
  }

  private wake(): void {
    if (this.waiters.length === 0) return;
    const waiters = this.waiters;
    this.waiters = [];
    for (const resolve of waiters) resolve();
  }
}
