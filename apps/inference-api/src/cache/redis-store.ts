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
}

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
  return { keyv, entryKey: (key) => adapter.createKeyPrefix(key, namespace) };
}

function safeParse<Value>(text: string): DeserializedData<Value> | undefined {
  try {
    const data: unknown = JSON.parse(text);
    return data !== null && typeof data === 'object' ? (data as DeserializedData<Value>) : undefined;
  } catch {
    return undefined;
  }
}
