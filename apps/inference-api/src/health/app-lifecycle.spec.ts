import { afterEach, describe, expect, it, vi } from 'vitest';
import { AppLifecycle } from './app-lifecycle.js';

describe('AppLifecycle', () => {
  afterEach(() => vi.useRealTimers());

  it('goes serving -> draining -> closing, with the time left until the deadline', () => {
    vi.useFakeTimers({ now: 1_000_000 });
    const lifecycle = new AppLifecycle();
    expect(lifecycle.isShuttingDown).toBe(false);
    expect(lifecycle.snapshot()).toEqual({ phase: 'serving' });
    lifecycle.beginDrain('SIGTERM', 10_000);
    vi.advanceTimersByTime(4_000);
    expect(lifecycle.isShuttingDown).toBe(true);
    expect(lifecycle.snapshot()).toEqual({ phase: 'draining', reason: 'SIGTERM', shuttingDownForMs: 4_000, deadlineInMs: 6_000 });
    lifecycle.beginDrain('SIGINT', 1);
    expect(lifecycle.snapshot().reason).toBe('SIGTERM');
    lifecycle.beginClose();
    expect(lifecycle.snapshot()).toEqual({ phase: 'closing', reason: 'SIGTERM', shuttingDownForMs: 4_000 });
  });
});
