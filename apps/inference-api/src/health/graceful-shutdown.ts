import type { EventEmitter } from 'node:events';
import type { Server } from 'node:http';
import type { INestApplication } from '@nestjs/common';
import { AppLifecycle } from './app-lifecycle.js';
import { HttpDrainer } from './http-drainer.js';
import { errorMessage, withTimeout } from './timeout.js';

/** How long Nest's shutdown hooks (providers, Redis, ...) may take after the drain, ms. */
export const DEFAULT_CLOSE_TIMEOUT_MS = 5_000;

export interface ShutdownLogger {
  info(obj: object, msg: string): void;
  warn(obj: object, msg: string): void;
  error(obj: object, msg: string): void;
}

export interface GracefulShutdownOptions {
  /** Drain deadline (SHUTDOWN_TIMEOUT_MS): in-flight requests and streams still running then are cut. */
  readonly timeoutMs: number;
  /** Budget for closing the app after the drain (default 5 s). PM2's kill_timeout must exceed timeoutMs + this. */
  readonly closeTimeoutMs?: number;
  readonly logger: ShutdownLogger;
  /** Default: SIGTERM and SIGINT. */
  readonly signals?: readonly NodeJS.Signals[];
  /** Default: process.exit. */
  readonly exit?: (code: number) => void;
  /** Where signals and PM2 messages come from (default: process). */
  readonly events?: EventEmitter;
}

/** Work that is not an HTTP request but is given the drain to finish (background responses). */
export interface BackgroundWork {
  readonly size: number;
  /** Resolves true once nothing runs, or false after `timeoutMs`. */
  idle(timeoutMs: number): Promise<boolean>;
}

/** DI token of the app's BackgroundWork (provided by the OpenAI module). */
export const BACKGROUND_WORK = Symbol.for('inference-api:background-work');

export interface GracefulShutdownDeps {
  readonly server: Server;
  readonly lifecycle: AppLifecycle;
  /** Waited for during the drain, like in-flight requests; what still runs at the deadline is stopped by the app's shutdown hooks. */
  readonly background?: BackgroundWork;
  /** Closes the application (Nest: app.close(), which runs the shutdown hooks and closes Fastify). */
  readonly close: () => Promise<void>;
}

/**
 * The shutdown sequence, started by the first SIGTERM/SIGINT (or PM2's `shutdown` message):
 *
 * 1. readiness turns 503 at once (AppLifecycle);
 * 2. the listener closes: no new connections (under PM2 the primary routes them to other workers);
 * 3. in-flight requests and SSE streams finish; each connection closes once its response is done,
 *    so keep-alive connections (NGINX's upstream pool, clients) cannot hold the exit;
 * 4. at the deadline whatever is still running is cut;
 * 5. `app.close()`: Nest's shutdown hooks close providers and clients (bounded by closeTimeoutMs);
 * 6. the process exits (0, or 1 when closing failed or timed out).
 *
 * It replaces Nest's enableShutdownHooks(), which calls app.close() right away: Fastify then
 * answers 503 to every request still arriving on an open connection, and its close waits for
 * idle keep-alive connections and for streams without any deadline. Further signals while
 * shutting down are logged and ignored.
 */
export class GracefulShutdown {
  private running: Promise<number> | undefined;
  private readonly drainer: HttpDrainer;
  private readonly closeTimeoutMs: number;
  private readonly exit: (code: number) => void;
  private readonly listeners: Array<[string, (...args: unknown[]) => void]> = [];

  constructor(
    private readonly deps: GracefulShutdownDeps,
    private readonly options: GracefulShutdownOptions,
  ) {
    this.drainer = new HttpDrainer(deps.server).track();
    this.closeTimeoutMs = options.closeTimeoutMs ?? DEFAULT_CLOSE_TIMEOUT_MS;
    this.exit = options.exit ?? ((code) => process.exit(code));
  }

  /** Subscribes to the signals (and PM2's `shutdown` message when there is an IPC channel). */
  listen(): this {
    const events = this.options.events ?? process;
    for (const signal of this.options.signals ?? (['SIGTERM', 'SIGINT'] as const)) {
      this.on(events, signal, () => this.trigger(signal));
    }
    // PM2 sends the message 'shutdown' instead of a signal with shutdown_with_message (and on Windows).
    if (events !== process || typeof process.send === 'function') {
      this.on(events, 'message', (message) => {
        if (message === 'shutdown') this.trigger('pm2 shutdown message');
      });
    }
    return this;
  }

  /** Removes the listeners (tests). */
  unlisten(): void {
    const events = this.options.events ?? process;
    for (const [event, listener] of this.listeners) events.off(event, listener);
    this.listeners.length = 0;
  }

  get inFlight(): number {
    return this.drainer.inFlightCount;
  }

  /** Runs the sequence once; later calls return the same promise. Resolves with the exit code, then exits. */
  trigger(reason: string): Promise<number> {
    if (this.running) {
      this.options.logger.warn({ reason, inFlight: this.drainer.inFlightCount }, 'already shutting down; ignoring');
      return this.running;
    }
    this.running = this.run(reason).then((code) => {
      this.exit(code);
      return code;
    });
    return this.running;
  }

  private async run(reason: string): Promise<number> {
    const { logger, timeoutMs } = this.options;
    // Last resort if something below hangs (a hook ignoring its timeout keeps a promise pending).
    const hardStop = setTimeout(() => {
      logger.error({ reason }, 'shutdown did not finish in time; exiting');
      this.exit(1);
    }, timeoutMs + this.closeTimeoutMs + 1_000);
    hardStop.unref();

    this.deps.lifecycle.beginDrain(reason, timeoutMs);
    logger.info(
      { reason, inFlight: this.drainer.inFlightCount, timeoutMs },
      'shutting down: readiness 503, no new connections, waiting for in-flight requests and streams',
    );
    const background = this.deps.background;
    // idle() also waits for background responses that requests still being drained start.
    const [drained, idle] = await Promise.all([this.drainer.drain(timeoutMs), background === undefined ? true : background.idle(timeoutMs)]);
    if (!idle) logger.warn({ running: background?.size, timeoutMs }, 'drain deadline reached: background responses still running are stopped (recorded as failed)');
    if (drained.completed) {
      logger.info({ durationMs: drained.durationMs }, 'drained: every in-flight request and stream finished');
    } else {
      logger.warn({ cut: drained.cut, timeoutMs }, 'drain deadline reached: remaining requests and streams were cut');
    }

    this.deps.lifecycle.beginClose();
    let code = 0;
    try {
      await withTimeout(() => this.deps.close(), this.closeTimeoutMs, 'closing the application');
      logger.info({}, 'shutdown complete');
    } catch (error) {
      logger.error({ err: errorMessage(error) }, 'closing the application failed');
      code = 1;
    } finally {
      clearTimeout(hardStop);
    }
    return code;
  }

  private on(events: EventEmitter, event: string, listener: (...args: unknown[]) => void): void {
    events.on(event, listener);
    this.listeners.push([event, listener]);
  }
}

/** Wires GracefulShutdown to a Nest app (main.ts). Call after listen(). */
export function installGracefulShutdown(app: INestApplication, options: GracefulShutdownOptions): GracefulShutdown {
  return new GracefulShutdown(
    {
      server: app.getHttpServer() as Server,
      lifecycle: app.get(AppLifecycle),
      background: optional<BackgroundWork>(app, BACKGROUND_WORK),
      close: () => app.close(),
    },
    options,
  ).listen();
}

function optional<T>(app: INestApplication, token: symbol): T | undefined {
  try {
    return app.get<symbol, T>(token, { strict: false });
  } catch {
    return undefined;
  }
}
