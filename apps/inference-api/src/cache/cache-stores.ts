import { Keyv } from 'keyv';
import { LruMap } from './lru-map.js';

/**
 * The embedded store: Keyv on a bounded LRU Map (CACHE_MAX_ENTRIES). No serialisation: entries are
 * immutable objects kept as they are; Keyv keeps the expiry next to each value.
 */
export function createMemoryStore(maxEntries: number): Keyv {
  return new Keyv({ store: new LruMap<string, unknown>(maxEntries), useKeyPrefix: false, serialize: undefined, deserialize: undefined });
}
