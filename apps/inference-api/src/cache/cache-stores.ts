import { Keyv } from 'keyv';
import { type CacheEntry, entryBytes } from './cache-entry.js';
import { LruMap } from './lru-map.js';

/**
 * The embedded store: Keyv on a bounded LRU Map (CACHE_MAX_ENTRIES entries, about CACHE_MAX_BYTES
 * bytes). No serialisation: entries are immutable objects kept as they are; Keyv keeps the expiry
 * next to each value (`{value, expires}`).
 */
export function createMemoryStore(maxEntries: number, maxBytes = Number.POSITIVE_INFINITY): Keyv {
  const store = new LruMap<string, unknown>(maxEntries, maxBytes, storedBytes);
  return new Keyv({ store, useKeyPrefix: false, serialize: undefined, deserialize: undefined });
}

/** What Keyv keeps for one entry, in bytes (approximately): the entry, or a small constant for anything else. */
function storedBytes(data: unknown): number {
  const entry = (data as { value?: unknown } | null)?.value;
  return entry !== null && typeof entry === 'object' && typeof (entry as { text?: unknown }).text === 'string' ? entryBytes(entry as CacheEntry) : 64;
}
