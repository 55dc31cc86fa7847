import type { BackgroundWork } from '../health/graceful-shutdown.js';

/** Why a background response's signal fired. */
export type StopReason = 'cancelled' | 'shutdown';

/**
 * The background responses running in this process (`background: true` on POST /v1/responses):
 * each has its own AbortController, independent of the request that created it (that request is
 * answered at once). `cancel` stops one (POST /v1/responses/{id}/cancel), `shutdown` all of them
 * when the app closes, and waits until each has recorded how it ended.
 */
export class BackgroundResponses implements BackgroundWork {
  private readonly running = new Map<string, { readonly controller: AbortController; readonly done: Promise<void> }>();
  private closing = false;

  /** Responses running now. */
  get size(): number {
    return this.running.size;
  }

  /**
   * Runs `work` detached. Its signal fires with a StopReason when the response is cancelled or the
   * app shuts down; `work` must settle soon after and never rejects the caller (errors are its own).
   */
  start(id: string, work: (signal: AbortSignal) => Promise<void>): void {
    const controller = new AbortController();
    if (this.closing) controller.abort('shutdown' satisfies StopReason);
    const done = work(controller.signal)
      .catch(() => undefined)
      .finally(() => {
        if (this.running.get(id)?.controller === controller) this.running.delete(id);
      });
    this.running.set(id, { controller, done });
  }

  /** Settles when `id`, running in this process, has recorded its end; undefined when it does not run here. */
  settled(id: string): Promise<void> | undefined {
    return this.running.get(id)?.done;
  }

  /** Stops `id` if it runs in this process; false when it does not (finished, or running elsewhere). */
  cancel(id: string): boolean {
    const entry = this.running.get(id);
    if (entry === undefined) return false;
    entry.controller.abort('cancelled' satisfies StopReason);
    return true;
  }

  /** Resolves true once nothing runs (responses started meanwhile included), false after `timeoutMs`. */
  async idle(timeoutMs: number): Promise<boolean> {
    const deadline = Date.now() + timeoutMs;
    while (this.running.size > 0) {
      const left = deadline - Date.now();
      if (left <= 0) return false;
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([
        Promise.all([...this.running.values()].map((entry) => entry.done)),
        new Promise((resolve) => {
          timer = setTimeout(resolve, left);
        }),
      ]);
      clearTimeout(timer);
    }
    return true;
  }

  /** Stops every response and waits until each has settled (recorded as failed by its work). */
  async shutdown(): Promise<void> {
    this.closing = true;
    const entries = [...this.running.values()];
    for (const entry of entries) entry.controller.abort('shutdown' satisfies StopReason);
    await Promise.all(entries.map((entry) => entry.done));
  }
}

/** The StopReason of an aborted signal (anything else counts as a shutdown). */
export function stopReasonOf(signal: AbortSignal): StopReason {
  return signal.reason === 'cancelled' ? 'cancelled' : 'shutdown';
}
