/**
 * A bounded store for Keyv (it accepts anything with get/set/delete/clear) that drops the least
 * recently used entries: two generations of `maxSize / 2` entries each (the "hashlru" scheme).
 * Writes and reads go to the young generation (a read from the old one promotes the entry); when
 * the young one is full it becomes the old one and the previous old one is dropped whole.
 *
 * Why not a Map in insertion order that evicts `keys().next()`: under steady churn V8 keeps the
 * deleted slots at the front of the table until it rehashes, so finding the oldest entry becomes a
 * scan; that made a cache miss (which stores) several times slower. Here every operation is O(1)
 * and the size never exceeds `maxSize`. Expired entries are dropped by Keyv when read and otherwise
 * age out with their generation.
 */
export class LruMap<K, V> {
  private young = new Map<K, V>();
  private old = new Map<K, V>();
  private readonly generationSize: number;

  constructor(readonly maxSize: number) {
    if (!Number.isInteger(maxSize) || maxSize < 1) throw new RangeError(`maxSize must be a positive integer (got ${maxSize})`);
    this.generationSize = Math.max(1, Math.floor(maxSize / 2));
  }

  /** Entries held (at most maxSize). */
  get size(): number {
    return this.young.size + this.old.size;
  }

  get(key: K): V | undefined {
    const value = this.young.get(key);
    if (value !== undefined) return value;
    const old = this.old.get(key);
    if (old === undefined) return undefined;
    this.old.delete(key);
    this.insert(key, old);
    return old;
  }

  has(key: K): boolean {
    return this.young.has(key) || this.old.has(key);
  }

  set(key: K, value: V): this {
    if (this.young.has(key)) {
      this.young.set(key, value);
    } else {
      this.old.delete(key);
      this.insert(key, value);
    }
    return this;
  }

  delete(key: K): boolean {
    const inYoung = this.young.delete(key);
    return this.old.delete(key) || inYoung;
  }

  clear(): void {
    this.young.clear();
    this.old.clear();
  }

  /** Keys, oldest generation first (for tests and debugging). */
  keys(): K[] {
    return [...this.old.keys(), ...this.young.keys()];
  }

  private insert(key: K, value: V): void {
    // maxSize 1: a single generation of one entry.
    if (this.young.size >= this.generationSize) {
      this.old = this.maxSize === 1 ? new Map() : this.young;
      this.young = new Map();
    }
    this.young.set(key, value);
  }
}
