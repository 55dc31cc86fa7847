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
});
