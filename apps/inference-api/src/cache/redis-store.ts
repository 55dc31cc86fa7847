import { createHash } from 'node:crypto';
import KeyvRedis from '@keyv/redis';
import { type DeserializedData, Keyv } from 'keyv';
import type { RedisConnection } from './redis-connection.js';

/** Redis keys of entries: `infer:cache::<key>` (@keyv/redis joins namespace and key with `::`). */
export const CACHE_STORE_NAMESPACE = 'infer:cache';

/**
 * @keyv/redis on the app's own connection, which owns the client's lifecycle: Nest's cache module
 * disconnects its stores on shutdown, and KeyvRedis' disconnect waits for pending replies (it
 * hangs while Redis is stalled), so this adapter leaves closing to RedisConnection.close().
 */
class ConnectionOwnedKeyvRedis<T> extends KeyvRedis<T> {
  override async disconnect(): Promise<void> {
    // RedisConnection closes the client, bounded.
  }
}

export interface RedisStore {
  readonly keyv: Keyv;
  /** The Redis key an entry is stored under (for the coalescer's atomic "already cached?" check). */
  entryKey(key: string): string;
  /** Read-change-write of the same entries without losing another process's write (see AtomicEntries). */
  readonly atomic: AtomicEntries;
}

/**
 * Raw access to the entries Keyv keeps, for what Keyv cannot do. Optimistic concurrency on them (the same Redis keys, the same `{value, expires}`
 * JSON): read an entry with a token of its raw text, then write only if the entry is still that text
 * (a Lua compare-and-set on its SHA-1). A caller that loses reads again and retries its change, so
 * two processes changing one record never lose each other's change.
 */
export interface AtomicEntries {
  /** The entry's value (undefined: none) and a token of what was read, for compareAndSet. */
  read(key: string): Promise<{ readonly value: unknown; readonly token: string }>;
  /** Writes `value` with a TTL of `ttlMs` if the entry is still what `token` saw; false when it changed. */
  compareAndSet(key: string, token: string, value: unknown, ttlMs: number): Promise<boolean>;
  /**
   * A flag under `key` that Redis expires after `ttlMs` (SET PX): unlike a Keyv entry, whose
   * `expires` each reader compares with its own clock, it lives exactly as long as Redis says, whatever
   * the clocks of the hosts (leases).
   */
  setFlag(key: string, ttlMs: number): Promise<void>;
  hasFlag(key: string): Promise<boolean>;
  deleteFlag(key: string): Promise<void>;
}

/** KEYS[1] the entry; ARGV: the SHA-1 of the text read ('' for none), the new text, its TTL in ms. */
const COMPARE_AND_SET = `
local current = redis.call('GET', KEYS[1])
local seen = ''
if current then seen = redis.sha1hex(current) end
if seen ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
return 1`;

/** Redis keys of stored Responses API responses: `infer:responses::<id>`. */
export const RESPONSES_STORE_NAMESPACE = 'infer:responses';

/**
 * A shared store: Keyv on @keyv/redis with plain JSON (faster than Keyv's default serializer) and
 * a deserializer that turns garbage into a miss instead of an exception. `namespace`: the response
 * cache's (default) or another user's of the same connection.
 */
export function createRedisStore(
  connection: RedisConnection,
  onError: (error: unknown) => void,
  namespace = CACHE_STORE_NAMESPACE,
  /** false (the cache): a failed call reads as a miss. true: it rejects, for a caller that must tell "absent" from "unreachable". */
  throwOnErrors = false,
): RedisStore {
  const adapter = new ConnectionOwnedKeyvRedis<unknown>(connection.client, {
    namespace,
    throwOnConnectError: false,
    throwOnErrors,
  });
  const keyv = new Keyv({
    store: adapter,
    namespace,
    throwOnErrors,
    useKeyPrefix: false,
    serialize: (data) => JSON.stringify(data),
    deserialize: safeParse,
  });
  keyv.on('error', onError);
  const entryKey = (key: string): string => adapter.createKeyPrefix(key, namespace);
  // Unbounded here: the caller runs them through RedisConnection.call (one timeout, one breaker count).
  const client = connection.client;
  const atomic: AtomicEntries = {
    async read(key) {
      const raw = await client.get(entryKey(key));
      if (raw === null) return { value: undefined, token: '' };
      const data = safeParse<unknown>(raw);
      // As Keyv's get: an entry past its `expires` is none (Redis drops it by its own TTL anyway).
      const live = data !== undefined && !(typeof data.expires === 'number' && data.expires < Date.now());
      return { value: live ? data.value : undefined, token: createHash('sha1').update(raw).digest('hex') };
    },
    async compareAndSet(key, token, value, ttlMs) {
      const text = JSON.stringify({ value, expires: Date.now() + ttlMs });
      const reply = await client.eval(COMPARE_AND_SET, { keys: [entryKey(key)], arguments: [token, text, String(ttlMs)] });
      return reply === 1;
    },
    async setFlag(key, ttlMs) {
      await client.set(entryKey(key), '1', { PX: ttlMs });
    },
    async hasFlag(key) {
      return (await client.exists(entryKey(key))) === 1;
    },
    async deleteFlag(key) {
      await client.del(entryKey(key));
    },
  };
  return { keyv, entryKey, atomic };
}

function safeParse<Value>(text: string): DeserializedData<Value> | undefined {
  try {
    const data: unknown = JSON.parse(text);
    return data !== null && typeof data === 'object' ? (data as DeserializedData<Value>) : undefined;
  } catch {
    return undefined;
  }
}
