import { EventEmitter, once } from 'node:events';
import { createServer, type Server } from 'node:http';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { AppLifecycle } from './app-lifecycle.js';
import { BackgroundResponses } from '../openai/background-responses.js';
import { type BackgroundWork, GracefulShutdown, type ShutdownLogger } from './graceful-shutdown.js';

function logger(): ShutdownLogger & { lines: string[] } {
  const lines: string[] = [];
  const log = (obj: object, msg: string) => lines.push(`${msg} ${JSON.stringify(obj)}`);
  return { lines, info: log, warn: log, error: log };
}

describe('GracefulShutdown', () => {
  let server: Server;
  let shutdown: GracefulShutdown | undefined;

  async function setup(close: () => Promise<void>, options: { timeoutMs?: number; closeTimeoutMs?: number; background?: BackgroundWork } = {}) {
    server = createServer((_req, res) => setTimeout(() => res.end('done'), 200));
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    const events = new EventEmitter();
    const lifecycle = new AppLifecycle();
    const exit = vi.fn<(code: number) => void>();
    const log = logger();
    shutdown = new GracefulShutdown(
      { server, lifecycle, close, ...(options.background === undefined ? {} : { background: options.background }) },
      { timeoutMs: options.timeoutMs ?? 5_000, closeTimeoutMs: options.closeTimeoutMs ?? 1_000, logger: log, events, exit },
    ).listen();
    const port = (server.address() as { port: number }).port;
    return { events, lifecycle, exit, log, port };
  }

  afterEach(() => {
    shutdown?.unlisten();
    server?.closeAllConnections();
    server?.close();
  });

  it('on SIGTERM: readiness off at once, in-flight requests finish, then the app closes and the process exits 0', async () => {
    const order: string[] = [];
    const { events, lifecycle, exit, port } = await setup(async () => {
      order.push(`close (phase ${lifecycle.phase}, ${shutdown?.inFlight} in flight)`);
    });
    const inFlight = fetch(`http://127.0.0.1:${port}/`).then((r) => r.text());
    await new Promise((r) => setTimeout(r, 50));
    events.emit('SIGTERM');
    expect(lifecycle.isShuttingDown).toBe(true);
    expect(lifecycle.snapshot()).toMatchObject({ phase: 'draining', reason: 'SIGTERM' });
    expect(await inFlight).toBe('done');
    await vi.waitFor(() => expect(exit).toHaveBeenCalledWith(0));
    expect(order).toEqual(['close (phase closing, 0 in flight)']);
  });

  it('runs once: a second signal is logged and ignored', async () => {
    const close = vi.fn(async () => undefined);
    const { events, exit, log } = await setup(close);
    events.emit('SIGINT');
    events.emit('SIGTERM');
    await vi.waitFor(() => expect(exit).toHaveBeenCalledTimes(1));
    expect(close).toHaveBeenCalledTimes(1);
    expect(log.lines.some((l) => l.startsWith('already shutting down'))).toBe(true);
  });

  it("starts on PM2's 'shutdown' message too", async () => {
    const { events, exit, lifecycle } = await setup(async () => undefined);
    events.emit('message', 'something else');
    expect(lifecycle.isShuttingDown).toBe(false);
    events.emit('message', 'shutdown');
    expect(lifecycle.snapshot().reason).toBe('pm2 shutdown message');
    await vi.waitFor(() => expect(exit).toHaveBeenCalledWith(0));
  });

  it('exits 1 when closing the app fails or hangs past its budget', async () => {
    const failing = await setup(async () => {
      throw new Error('boom');
    });
    failing.events.emit('SIGTERM');
    await vi.waitFor(() => expect(failing.exit).toHaveBeenCalledWith(1));
    shutdown?.unlisten();
    server.close();

    const hanging = await setup(() => new Promise<void>(() => undefined), { closeTimeoutMs: 100 });
    const started = Date.now();
    hanging.events.emit('SIGTERM');
    await vi.waitFor(() => expect(hanging.exit).toHaveBeenCalledWith(1));
    expect(Date.now() - started).toBeLessThan(1_000);
    expect(hanging.log.lines.some((l) => l.includes('timed out'))).toBe(true);
  });

  it('gives background work the drain to finish; what still runs at the deadline is left to the close', async () => {
    const background = new BackgroundResponses();
    const ends: string[] = [];
    const run = (ms: number, name: string) =>
      background.start(name, (signal) => new Promise<void>((resolve) => {
        const timer = setTimeout(() => (ends.push(`${name} done`), resolve()), ms);
        signal.addEventListener('abort', () => (clearTimeout(timer), ends.push(`${name} stopped`), resolve()));
      }));
    run(150, 'quick');
    run(5_000, 'slow');
    const { events, exit, log } = await setup(async () => {
      ends.push(`close with ${background.size} running`);
      await background.shutdown();
    }, { timeoutMs: 400, background });
    const started = Date.now();
    events.emit('SIGTERM');
    await vi.waitFor(() => expect(exit).toHaveBeenCalledWith(0));
    expect(ends).toEqual(['quick done', 'close with 1 running', 'slow stopped']);
    expect(Date.now() - started).toBeGreaterThanOrEqual(390);
    expect(Date.now() - started).toBeLessThan(2_000);
    expect(log.lines.some((l) => l.includes('background responses still running are stopped'))).toBe(true);
  });
});
