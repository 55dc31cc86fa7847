import { randomBytes } from 'node:crypto';
import type { OpenAIErrorBody } from '../common/api-error.js';
import { type CacheEntry, parseEntry } from './cache-entry.js';
import type { RedisConnection } from './redis-connection.js';

/**
 * Cross-process single-flight through Redis. Per cache key:
 *
 * - lock    `<prefix>:lock:<key>`  SET NX PX with a random token, refreshed (compare-and-PEXPIRE)
 *                                  while the leader generates, deleted (compare-and-DEL) at the end;
 *                                  a crashed leader's lock expires after `lockTtlMs`.
 * - channel `<prefix>:done:<key>`  the leader publishes the outcome once the entry is stored:
 *                                  `{"t":"ok","e":<entry>}`, `{"t":"err","s":<status>,"b":<OpenAI error body>}`,
 *                                  or `{"t":"retry"}` (the leader was aborted: someone else should lead).
 *
 * Taking the lock also checks, atomically, whether the entry exists (a leader stores before it
 * unlocks), so a request that missed just before another finished does not call upstream again.
 * Followers subscribe, then poll (take the lock or find the entry) as a safety net against missed
 * messages and dead leaders; they give up after their deadline and call upstream themselves.
 */

/** Outcome of trying to take the lock. */
export type AcquireResult = 'acquired' | 'cached' | 'busy' | 'unavailable';

export type CoalesceMessage =
  | { readonly t: 'ok'; readonly e: CacheEntry }
  /** `r`: the upstream's retry-after in seconds, when it gave one. */
  | { readonly t: 'err'; readonly s: number; readonly b: OpenAIErrorBody; readonly r?: number }
  | { readonly t: 'retry' };

export type WaitOutcome =
  | { readonly kind: 'entry'; readonly entry: CacheEntry }
  | { readonly kind: 'error'; readonly status: number; readonly body: OpenAIErrorBody; readonly retryAfterSeconds?: number }
  /** Lead: with the lock (`lock` set), or without it (deadline passed, Redis unavailable). */
  | { readonly kind: 'lead'; readonly lock: HeldLock | undefined }
  | { readonly kind: 'aborted' };

export interface RedisCoalescerOptions {
  /** The Redis key under which the cache store keeps the entry of a cache key. */
  readonly entryKey: (key: string) => string;
  /** Key and channel prefix (default `infer`). */
  readonly prefix?: string;
  /** Lock lifetime without a heartbeat (default 5000 ms). */
  readonly lockTtlMs?: number;
  /** Follower poll interval while pub/sub works (default 1000 ms) and while it does not (default 150 ms). */
  readonly pollMs?: number;
  readonly pollWithoutPubSubMs?: number;
}

const ACQUIRE = `if ARGV[3] == '1' and redis.call('EXISTS', KEYS[1]) == 1 then return 2 end
if redis.call('SET', KEYS[2], ARGV[1], 'NX', 'PX', ARGV[2]) then return 1 end
return 0`;
const EXTEND = `if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 0`;
const RELEASE = `if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0`;

const noop = () => undefined;

export class RedisCoalescer {
  readonly lockTtlMs: number;
  private readonly prefix: string;
  private readonly pollMs: number;
  private readonly pollWithoutPubSubMs: number;

  constructor(
    private readonly connection: RedisConnection,
    private readonly options: RedisCoalescerOptions,
  ) {
    this.prefix = options.prefix ?? 'infer';
    this.lockTtlMs = options.lockTtlMs ?? 5_000;
    this.pollMs = options.pollMs ?? 1_000;
    this.pollWithoutPubSubMs = options.pollWithoutPubSubMs ?? 150;
  }

  lockKey(key: string): string {
    return `${this.prefix}:lock:${key}`;
  }

  channel(key: string): string {
    return `${this.prefix}:done:${key}`;
  }

  /**
   * Tries to become the leader for `key`. With `checkEntry`, answers 'cached' when the entry is
   * already stored. 'unavailable' when Redis is down or slow: lead without a lock.
   */
  async acquire(key: string, checkEntry = true): Promise<{ result: AcquireResult; lock?: HeldLock }> {
    const token = randomBytes(9).toString('base64url');
    try {
      const reply = await this.connection.call((client) =>
        client.eval(ACQUIRE, {
          keys: [this.options.entryKey(key), this.lockKey(key)],
          arguments: [token, String(this.lockTtlMs), checkEntry ? '1' : '0'],
        }),
      );
      if (reply === 1) return { result: 'acquired', lock: new HeldLock(this.connection, this.lockKey(key), token, this.lockTtlMs) };
      return { result: reply === 2 ? 'cached' : 'busy' };
    } catch {
      return { result: 'unavailable' };
    }
  }

  /** Tells the followers of `key` how it ended. Best effort, bounded. */
  async publish(key: string, message: CoalesceMessage): Promise<void> {
    try {
      await this.connection.call((client) => client.publish(this.channel(key), JSON.stringify(message)));
    } catch {
      // Followers fall back to polling (the lock disappears with the leader).
    }
  }

  /**
   * Waits for the leader of `key` (another process holds the lock) until `deadline`: its published
   * outcome, the entry appearing, or the lock becoming free (then this caller leads). Never waits
   * past the deadline; aborted by `signal`.
   */
  async waitForLeader(
    key: string,
    options: { readonly signal: AbortSignal; readonly deadline: number; readonly readEntry: () => Promise<CacheEntry | undefined> },
  ): Promise<WaitOutcome> {
    const { signal, deadline } = options;
    const inbox: CoalesceMessage[] = [];
    let wakeUp: (() => void) | undefined;
    const listener = (raw: string) => {
      const message = parseMessage(raw);
      if (!message) return;
      inbox.push(message);
      wakeUp?.();
    };
    const channel = this.channel(key);
    const subscriber = this.connection.subscriber();
    let subscribed = false;
    if (subscriber) {
      try {
        await this.connection.bounded(subscriber.subscribe(channel, listener));
        subscribed = true;
      } catch {
        subscriber.unsubscribe(channel, listener).catch(noop);
      }
    }
    try {
      for (;;) {
        const message = inbox.shift();
        if (message?.t === 'ok') return { kind: 'entry', entry: message.e };
        if (message?.t === 'err') return { kind: 'error', status: message.s, body: message.b, ...(message.r === undefined ? {} : { retryAfterSeconds: message.r }) };
        // No message yet, or 'retry' (the leader was aborted): look at the lock and the entry.
        if (signal.aborted) return { kind: 'aborted' };
        if (Date.now() >= deadline) return { kind: 'lead', lock: undefined };
        const { result, lock } = await this.acquire(key);
        if (result === 'acquired') {
          if (!signal.aborted) return { kind: 'lead', lock };
          await lock?.release();
          return { kind: 'aborted' };
        }
        if (result === 'unavailable') return { kind: 'lead', lock: undefined };
        if (result === 'cached') {
          const entry = await options.readEntry();
          // Stored but unreadable (corrupt): generate and overwrite it.
          return entry ? { kind: 'entry', entry } : { kind: 'lead', lock: undefined };
        }
        if (inbox.length > 0) continue;
        const waitMs = Math.min(subscribed ? this.pollMs : this.pollWithoutPubSubMs, deadline - Date.now());
        await sleep(waitMs, signal, (wake) => (wakeUp = wake));
        wakeUp = undefined;
      }
    } finally {
      if (subscribed && subscriber) subscriber.unsubscribe(channel, listener).catch(noop);
    }
  }
}

/** A lock this process holds: refreshed in the background until released. */
export class HeldLock {
  private readonly heartbeat: NodeJS.Timeout;
  private released = false;

  constructor(
    private readonly connection: RedisConnection,
    readonly key: string,
    readonly token: string,
    ttlMs: number,
  ) {
    this.heartbeat = setInterval(() => {
      this.connection.call((client) => client.eval(EXTEND, { keys: [key], arguments: [token, String(ttlMs)] })).catch(noop);
    }, Math.max(Math.floor(ttlMs / 3), 50));
    this.heartbeat.unref();
  }

  /** Deletes the lock if it is still ours. Best effort, bounded. */
  async release(): Promise<void> {
    if (this.released) return;
    this.released = true;
    clearInterval(this.heartbeat);
    try {
      await this.connection.call((client) => client.eval(RELEASE, { keys: [this.key], arguments: [this.token] }));
    } catch {
      // It expires by itself.
    }
  }
}

export function parseMessage(raw: string): CoalesceMessage | undefined {
  let value: unknown;
  try {
    value = JSON.parse(raw);
  } catch {
    return undefined;
  }
  if (value === null || typeof value !== 'object') return undefined;
  const m = value as Record<string, unknown>;
  if (m['t'] === 'retry') return { t: 'retry' };
  if (m['t'] === 'ok') {
    const entry = parseEntry(m['e']);
    return entry ? { t: 'ok', e: entry } : undefined;
  }
  if (m['t'] === 'err' && typeof m['s'] === 'number' && m['s'] >= 400 && m['s'] < 600) {
    const body = m['b'] as OpenAIErrorBody | undefined;
    const error = body?.error;
    if (error && typeof error === 'object' && typeof error.message === 'string' && typeof error.type === 'string') {
      const r = m['r'];
      const retryAfter = typeof r === 'number' && Number.isInteger(r) && r >= 0 ? { r } : {};
      return { t: 'err', s: m['s'], b: { error: { message: error.message, type: error.type, param: error.param ?? null, code: error.code ?? null } }, ...retryAfter };
    }
  }
  return undefined;
}

/** Sleeps `ms`, or less when woken (a message arrived) or aborted. */
function sleep(ms: number, signal: AbortSignal, register: (wake: () => void) => void): Promise<void> {
  return new Promise<void>((resolve) => {
    if (ms <= 0 || signal.aborted) {
      resolve();
      return;
    }
    const finish = () => {
      clearTimeout(timer);
      signal.removeEventListener('abort', finish);
      resolve();
    };
    const timer = setTimeout(finish, ms);
    signal.addEventListener('abort', finish, { once: true });
    register(finish);
  });
}
