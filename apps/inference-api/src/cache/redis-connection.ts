import { createClient, type RedisClientType } from '@keyv/redis';

/** What the connection logs through (Nest's Logger fits). */
export interface CacheLogger {
  log(message: string): void;
  warn(message: string): void;
  debug?(message: string): void;
}

export interface RedisConnectionOptions {
  readonly url: string;
  /** Bound on every call, on connecting at boot, and on closing. */
  readonly timeoutMs: number;
  readonly logger: CacheLogger;
  /** Consecutive timeouts that open the circuit (default 3). */
  readonly breakerThreshold?: number;
  /** How long an open circuit skips Redis before trying again (default 1000 ms). */
  readonly breakerOpenMs?: number;
}

/** Thrown by `call` when Redis is down, slow (past the timeout), or the circuit is open. */
export class RedisUnavailableError extends Error {
  override readonly name = 'RedisUnavailableError';
}

/** Reconnect forever with exponential backoff (50 ms doubling to 2 s) and jitter. */
export function reconnectDelay(retries: number): number {
  return Math.min(50 * 2 ** Math.min(retries, 6), 2_000) + Math.floor(Math.random() * 50);
}

/**
 * The app's own Redis connection: the cache store's client (passed to @keyv/redis), locks, pub/sub
 * and the readiness ping. Configured so it never hangs a request (see STACK.md):
 * - `disableOfflineQueue`: while disconnected a command fails at once instead of queueing until Redis is back;
 * - `connectTimeout` and reconnect with backoff forever, so it recovers by itself;
 * - an `error` listener (an unhandled 'error' would crash the process), logging state changes only;
 * - `bounded()`: our own timeout around every call (node-redis' own command timeout stops counting
 *   once a command is written, so a stalled server would hang it), plus a small circuit breaker:
 *   after a few timeouts in a row Redis is skipped for a moment instead of costing every request
 *   the full timeout.
 */
export class RedisConnection {
  readonly client: RedisClientType;
  private subscriberClient: RedisClientType | undefined;
  private readonly timeoutMs: number;
  private readonly logger: CacheLogger;
  private readonly breakerThreshold: number;
  private readonly breakerOpenMs: number;
  private consecutiveTimeouts = 0;
  private openUntil = 0;
  private closed = false;

  constructor(options: RedisConnectionOptions) {
    this.timeoutMs = options.timeoutMs;
    this.logger = options.logger;
    this.breakerThreshold = options.breakerThreshold ?? 3;
    this.breakerOpenMs = options.breakerOpenMs ?? 1_000;
    this.client = createClient({
      url: options.url,
      disableOfflineQueue: true,
      socket: { connectTimeout: Math.max(options.timeoutMs, 100), reconnectStrategy: reconnectDelay },
    }) as RedisClientType;
    this.watch(this.client, 'redis', true);
  }

  /** Connects, waiting at most `timeoutMs`: the app starts (without cache) even if Redis is down. */
  async start(): Promise<void> {
    if (this.client.isOpen) return;
    const connecting = this.client.connect().catch(() => undefined);
    this.subscriber();
    await this.race(connecting);
    if (!this.client.isReady) {
      this.logger.warn(`Redis is not reachable yet; serving without the shared cache until it is (retrying in the background)`);
    }
  }

  /** True when a call has a chance: connected and the circuit is closed. */
  get available(): boolean {
    return !this.closed && this.client.isReady && Date.now() >= this.openUntil;
  }

  /** Runs one operation on the command client within the timeout; RedisUnavailableError otherwise. */
  call<T>(operation: (client: RedisClientType) => Promise<T>): Promise<T> {
    if (!this.available) return Promise.reject(new RedisUnavailableError('Redis is unavailable'));
    return this.bounded(operation(this.client));
  }

  /**
   * Bounds a promise that talks to Redis (also used around the cache store's calls). A timeout
   * counts towards the circuit breaker; a success closes it.
   */
  bounded<T>(promise: Promise<T>): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.consecutiveTimeouts += 1;
        if (this.consecutiveTimeouts >= this.breakerThreshold) {
          if (this.openUntil <= Date.now()) this.logger.warn(`Redis timed out ${this.consecutiveTimeouts} times in a row; skipping it for ${this.breakerOpenMs} ms`);
          this.openUntil = Date.now() + this.breakerOpenMs;
        }
        reject(new RedisUnavailableError(`Redis did not answer within ${this.timeoutMs} ms`));
      }, this.timeoutMs);
      promise.then(
        (value) => {
          clearTimeout(timer);
          this.consecutiveTimeouts = 0;
          resolve(value);
        },
        (error: unknown) => {
          clearTimeout(timer);
          reject(error instanceof Error ? error : new RedisUnavailableError(String(error)));
        },
      );
    });
  }

  /** The readiness check: PING within the timeout; rejects when Redis is down or slow. */
  async ping(): Promise<void> {
    if (this.closed || !this.client.isReady) throw new RedisUnavailableError('Redis is not connected');
    const reply = await this.bounded(this.client.ping());
    if (reply !== 'PONG') throw new RedisUnavailableError(`Unexpected PING reply: ${String(reply)}`);
  }

  /**
   * The pub/sub connection (a duplicate of the command client, created and connected on first use).
   * Subscriptions survive reconnects (node-redis re-subscribes).
   */
  subscriber(): RedisClientType | undefined {
    if (this.closed) return undefined;
    if (!this.subscriberClient) {
      const subscriber = this.client.duplicate() as RedisClientType;
      this.watch(subscriber, 'redis pub/sub', false);
      subscriber.connect().catch(() => undefined);
      this.subscriberClient = subscriber;
    }
    return this.subscriberClient.isReady ? this.subscriberClient : undefined;
  }

  /** Closes both connections, waiting at most `timeoutMs` for pending replies, then drops them. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await Promise.all([this.client, this.subscriberClient].map((client) => (client ? this.closeOne(client) : undefined)));
  }

  private async closeOne(client: RedisClientType): Promise<void> {
    if (!client.isOpen) return;
    try {
      if (client.isReady) await this.race(client.close().catch(() => undefined));
    } finally {
      if (client.isOpen) {
        try {
          client.destroy();
        } catch {
          // already closed
        }
      }
    }
  }

  private watch(client: RedisClientType, label: string, primary: boolean): void {
    let down = false;
    client.on('error', (error: unknown) => {
      if (this.closed) return;
      const message = `${label}: ${error instanceof Error ? error.message : String(error)}`;
      if (down) {
        this.logger.debug?.(message);
        return;
      }
      down = true;
      this.logger.warn(`${message}; ${primary ? 'serving without the shared cache' : 'coalescing falls back to polling'} until it is back`);
    });
    client.on('ready', () => {
      if (down) {
        down = false;
        this.logger.log(`${label}: connected again`);
      }
      if (primary) {
        this.consecutiveTimeouts = 0;
        this.openUntil = 0;
      }
    });
  }

  private race(promise: Promise<unknown>): Promise<void> {
    return new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, this.timeoutMs);
      timer.unref?.();
      void promise.then(() => {
        clearTimeout(timer);
        resolve();
      });
    });
  }
}
