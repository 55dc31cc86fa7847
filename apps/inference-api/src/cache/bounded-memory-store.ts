import { Keyv } from 'keyv';
import { LRUCache } from 'lru-cache';

export interface BoundedMemoryStoreOptions<Value extends object> {
  /** Most values kept. */
  readonly maxEntries: number;
  /** Most (approximate) bytes kept, as counted by `sizeOf`. */
  readonly maxBytes: number;
  /** The approximate memory of one value, at least 1. */
  readonly sizeOf: (value: Value) => number;
}

/**
 * Keyv on lru-cache bounded by count and by size: the in-process store of the caches whose values
 * vary a lot in size (stored responses, embeddings). Values are kept as they are (no serialisation),
 * least recently used dropped first; a value larger than the whole budget is not kept, and the
 * write says so (Keyv's `set` resolves false). The expiry is Keyv's (kept next to each value).
 */
export function boundedMemoryKeyv<Value extends object>(options: BoundedMemoryStoreOptions<Value>): Keyv {
  const sizeOf = (data: { value: Value }) => Math.max(1, options.sizeOf(data.value));
  const lru = new LRUCache<string, { value: Value }>({ max: options.maxEntries, maxSize: options.maxBytes, sizeCalculation: sizeOf });
  // Keyv calls set(key, value, ttl), and lru-cache's third argument is an options object: adapted.
  const store = {
    get: (key: string) => lru.get(key),
    set: (key: string, value: { value: Value }) => {
      // Too large for the whole budget: refused, and what was there stays (lru-cache would drop it).
      if (sizeOf(value) > options.maxBytes) return false;
      lru.set(key, value);
      return lru.has(key);
    },
    delete: (key: string) => lru.delete(key),
    clear: () => lru.clear(),
  };
  return new Keyv({ store, useKeyPrefix: false, serialize: undefined, deserialize: undefined });
}
