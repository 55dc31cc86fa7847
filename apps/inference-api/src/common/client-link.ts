import type { ServerResponse } from 'node:http';
import { abortControllers } from './abort-pool.js';

/**
 * The client of one request as the cache sees it. A request answered from the cache needs no
 * AbortSignal at all (creating one costs microseconds: `AbortController#signal` is the expensive
 * part), a request that waits on another one only needs to know when its client leaves, and the
 * request that leads a shared upstream call lends its AbortController to it.
 */
export interface CacheClient {
  /** An AbortSignal that fires when the client leaves: for an upstream call made for this request alone. */
  readonly signal: AbortSignal;
  /** True once the client left before its response was complete. */
  readonly gone: boolean;
  /** Calls `listener` once when the client leaves before its response is complete; returns an unregister function. */
  onGone(listener: () => void): () => void;
  /**
   * Hands this request's AbortController to a shared upstream call: from now on the client leaving
   * no longer aborts it (the call's owner decides, counting its consumers, and gives it back to
   * `abortControllers` when the call has settled). Undefined when the client cannot lend one (a
   * plain signal).
   */
  adopt?(): AbortController;
}

/**
 * A CacheClient on the raw HTTP response: the client leaving before its response is complete. Its
 * AbortController comes from `abortControllers` and goes back there when the response completed
 * (by then the upstream call made with the signal has settled), unless it was adopted.
 */
export class ResponseClient implements CacheClient {
  gone = false;
  private controller: AbortController | undefined;
  private adopted = false;
  private listeners: Array<() => void> | undefined;

  constructor(res: ServerResponse) {
    if (res.destroyed && !res.writableFinished) {
      this.gone = true;
      return;
    }
    res.once('close', () => {
      if (res.writableFinished) {
        if (this.controller && !this.adopted) abortControllers.release(this.controller);
        return;
      }
      this.leave();
    });
  }

  /**
   * What the client leaving does, for a part of the response that is no longer wanted although the
   * client stays (one choice of several when another failed): abort the upstream call made for it
   * (an adopted one is aborted by its owner once no consumer is left) and tell the listeners.
   */
  leave(): void {
    if (this.gone) return;
    this.gone = true;
    if (!this.adopted) this.controller?.abort();
    const listeners = this.listeners;
    this.listeners = undefined;
    if (listeners) for (const listener of listeners) listener();
  }

  get signal(): AbortSignal {
    if (!this.controller) {
      this.controller = abortControllers.acquire();
      if (this.gone && !this.adopted) this.controller.abort();
    }
    return this.controller.signal;
  }

  onGone(listener: () => void): () => void {
    if (this.gone) {
      listener();
      return noop;
    }
    (this.listeners ??= []).push(listener);
    return () => {
      const index = this.listeners?.indexOf(listener) ?? -1;
      if (index >= 0) this.listeners?.splice(index, 1);
    };
  }

  adopt(): AbortController {
    this.adopted = true;
    return (this.controller ??= abortControllers.acquire());
  }
}

/** A CacheClient on an AbortSignal (callers that already have one, and tests). */
export class SignalClient implements CacheClient {
  constructor(readonly signal: AbortSignal) {}

  get gone(): boolean {
    return this.signal.aborted;
  }

  onGone(listener: () => void): () => void {
    if (this.signal.aborted) {
      listener();
      return noop;
    }
    this.signal.addEventListener('abort', listener, { once: true });
    return () => this.signal.removeEventListener('abort', listener);
  }
}

const noop = () => undefined;
