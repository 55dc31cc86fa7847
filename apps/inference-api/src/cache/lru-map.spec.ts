import { describe, expect, it } from 'vitest';
import { LruMap } from './lru-map.js';

describe('LruMap', () => {
  it('drops the least recently used entries and never holds more than maxSize', () => {
    const map = new LruMap<string, number>(2);
    map.set('a', 1).set('b', 2);
    expect(map.get('a')).toBe(1); // a is now the most recent
    map.set('c', 3);
    expect(map.keys().sort()).toEqual(['a', 'c']);
    map.set('a', 10); // writing refreshes too
    map.set('d', 4);
    expect(map.keys().sort()).toEqual(['a', 'd']);
    expect(map.get('a')).toBe(10);
    expect(map.size).toBe(2);
  });

  it('keeps recently read entries under churn', () => {
    const map = new LruMap<number, number>(100);
    for (let i = 0; i < 10_000; i += 1) {
      map.set(i, i);
      expect(map.get(-1) ?? map.set(-1, -1).get(-1)).toBe(-1); // read on every write: never evicted
      expect(map.size).toBeLessThanOrEqual(100);
    }
    expect(map.has(9_999)).toBe(true);
    expect(map.has(0)).toBe(false);
    expect(map.delete(9_999)).toBe(true);
    expect(map.has(9_999)).toBe(false);
    map.clear();
    expect(map.size).toBe(0);
  });

  it('works with maxSize 1, and rejects a bad size', () => {
    const one = new LruMap<string, number>(1);
    one.set('a', 1).set('b', 2);
    expect(one.keys()).toEqual(['b']);
    expect(() => new LruMap(0)).toThrow(RangeError);
  });

  it('with sizeOf, also stays within about maxBytes: a generation rotates at half of it; a value larger than half is not kept', () => {
    const lru = new LruMap<string, string>(1_000, 100, (value) => value.length);
    lru.set('a', 'x'.repeat(30)).set('b', 'x'.repeat(30));
    // 'b' would have taken the young generation past 50 bytes: 'a' went to the old one first.
    expect(lru.keys()).toEqual(['a', 'b']);
    expect(lru.bytes).toBe(60);
    lru.set('c', 'x'.repeat(30));
    expect(lru.keys()).toEqual(['b', 'c']);
    lru.set('d', 'x'.repeat(30));
    expect(lru.keys()).toEqual(['c', 'd']);
    expect(lru.bytes).toBeLessThanOrEqual(100);
    // Replacing and deleting keep the count right; a value over half the budget is refused, the old one dropped.
    lru.set('d', 'x'.repeat(10));
    expect(lru.bytes).toBe(40);
    lru.set('e', 'x'.repeat(60));
    expect(lru.has('e')).toBe(false);
    lru.delete('c');
    expect(lru.bytes).toBe(10);
    for (let i = 0; i < 1_000; i++) lru.set(`k${i}`, 'x'.repeat(i % 40));
    expect(lru.bytes).toBeLessThanOrEqual(100);
  });
});
