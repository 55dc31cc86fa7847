import { Injectable } from '@nestjs/common';

/**
 * - `serving`: normal operation.
 * - `draining`: a shutdown signal arrived: readiness answers 503, the listener is closed, in-flight
 *   requests and streams are finishing (until the deadline).
 * - `closing`: drained (or deadline reached); Nest's shutdown hooks are closing providers and clients.
 */
export type LifecyclePhase = 'serving' | 'draining' | 'closing';

export interface LifecycleSnapshot {
  readonly phase: LifecyclePhase;
  /** What started the shutdown (signal name or 'pm2 shutdown message'), when shutting down. */
  readonly reason?: string;
  /** Milliseconds since the drain began, when shutting down. */
  readonly shuttingDownForMs?: number;
  /** Milliseconds left until in-flight work is cut, while draining. */
  readonly deadlineInMs?: number;
}

/** The process's serving state: one instance per app, read by readiness, driven by GracefulShutdown. */
@Injectable()
export class AppLifecycle {
  private current: LifecyclePhase = 'serving';
  private startedAt = 0;
  private deadlineAt = 0;
  private why: string | undefined;

  get phase(): LifecyclePhase {
    return this.current;
  }

  /** True from the first shutdown signal on: readiness must fail. */
  get isShuttingDown(): boolean {
    return this.current !== 'serving';
  }

  beginDrain(reason: string, timeoutMs: number): void {
    if (this.current !== 'serving') return;
    this.current = 'draining';
    this.why = reason;
    this.startedAt = Date.now();
    this.deadlineAt = this.startedAt + timeoutMs;
  }

  beginClose(): void {
    if (this.current === 'serving') this.startedAt = Date.now();
    this.current = 'closing';
  }

  snapshot(): LifecycleSnapshot {
    if (this.current === 'serving') return { phase: 'serving' };
    const now = Date.now();
    return {
      phase: this.current,
      ...(this.why === undefined ? {} : { reason: this.why }),
      shuttingDownForMs: now - this.startedAt,
      ...(this.current === 'draining' ? { deadlineInMs: Math.max(0, this.deadlineAt - now) } : {}),
    };
  }
}
