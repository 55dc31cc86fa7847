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
  /** Bytes (as `sizeOf` counts them) in each generation, with a byte bound. */
  private youngBytes = 0;
  private oldBytes = 0;
  private readonly generationBytes: number;

  /**
   * @param maxBytes with `sizeOf`: also at most about this many bytes (a generation rotates when it
   *   holds half of it; a value larger than half is not kept).
   */
  constructor(
    readonly maxSize: number,
    readonly maxBytes = Number.POSITIVE_INFINITY,
    private readonly sizeOf: ((value: V) => number) | undefined = undefined,
  ) {
    if (!Number.isInteger(maxSize) || maxSize < 1) throw new RangeError(`maxSize must be a positive integer (got ${maxSize})`);
    this.generationSize = Math.max(1, Math.floor(maxSize / 2));
    this.generationBytes = maxBytes / 2;
  }

  /** Bytes held, as `sizeOf` counts them (0 without it). */
  get bytes(): number {
    return this.youngBytes + this.oldBytes;
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
    if (this.sizeOf !== undefined) this.oldBytes -= this.sizeOf(old);
    this.insert(key, old);
    return old;
  }

  has(key: K): boolean {
    return this.young.has(key) || this.old.has(key);
  }

  set(key: K, value: V): this {
    this.delete(key);
    this.insert(key, value);
    return this;
  }

  delete(key: K): boolean {
    const sizeOf = this.sizeOf;
    if (sizeOf === undefined) {
      const inYoung = this.young.delete(key);
      return this.old.delete(key) || inYoung;
    }
    const young = this.young.get(key);
    if (young !== undefined) {
      this.young.delete(key);
      this.youngBytes -= sizeOf(young);
      return true;
    }
    const old = this.old.get(key);
    if (old === undefined) return false;
    this.old.delete(key);
    this.oldBytes -= sizeOf(old);
    return true;
  }

  clear(): void {
    this.young.clear();
    this.old.clear();
    this.youngBytes = 0;
    this.oldBytes = 0;
  }

  /** Keys, oldest generation first (for tests and debugging). */
  keys(): K[] {
    return [...this.old.keys(), ...this.young.keys()];
  }

  private insert(key: K, value: V): void {
    const size = this.sizeOf === undefined ? 0 : this.sizeOf(value);
    // Larger than a generation may hold: not kept (it would push out everything else).
    if (size > this.generationBytes) return;
    // maxSize 1: a single generation of one entry.
    if (this.young.size >= this.generationSize || this.youngBytes + size > this.generationBytes) {
      this.old = this.maxSize === 1 ? new Map() : this.young;
      this.oldBytes = this.maxSize === 1 ? 0 : this.youngBytes;
      this.young = new Map();
      this.youngBytes = 0;
    }
    this.young.set(key, value);
    this.youngBytes += size;
  }
}
