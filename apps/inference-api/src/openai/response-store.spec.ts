import { Keyv } from 'keyv';
import { afterEach, describe, expect, it, vi } from 'vitest';
import type { RedisConnection } from '../cache/redis-connection.js';
import { createResponseStore, parseStoredConversation, parseStoredResponse, recordSize, ResponseStore, type StoredConversation, type StoredResponse } from './response-store.js';

const logger = () => ({ log: vi.fn(), warn: vi.fn(), debug: vi.fn() });

function record(id: string, owner: string | null = null): StoredResponse {
  return {
    v: 1,
    response: { id, object: 'response', output: [{ id: 'msg_1', type: 'message', content: [{ type: 'output_text', text: 'hi' }] }] },
    input: [{ id: 'msg_0', type: 'message', role: 'user', content: [{ type: 'input_text', text: 'hello' }] }],
    context: [],
    owner,
  };
}

async function memoryStore(ttlSeconds = 60, maxEntries = 100, log = logger(), maxBytes = 1_000_000): Promise<ResponseStore> {
  const store = await createResponseStore({ responsesStore: { enabled: true, ttlSeconds, maxEntries, maxBytes, backgroundLeaseSeconds: 30 } }, null, log);
  expect(store).toBeInstanceOf(ResponseStore);
  return store as ResponseStore;
}

afterEach(() => {
  vi.useRealTimers();
});

describe('ResponseStore (in memory)', () => {
  it('is null when disabled, in memory without a Redis connection', async () => {
    expect(await createResponseStore({ responsesStore: { enabled: false, ttlSeconds: 60, maxEntries: 10, maxBytes: 10_000, backgroundLeaseSeconds: 30 } }, null, logger())).toBeNull();
    expect((await memoryStore(60, 10)).description).toContain('in memory (at most 10 responses and about 1000000 bytes');
  });

  it('saves, reads and deletes by response id', async () => {
    const store = await memoryStore();
    expect(await store.get('resp_a', null)).toBeUndefined();
    expect(await store.save(record('resp_a'))).toBe(true);
    expect(await store.get('resp_a', null)).toEqual(record('resp_a'));
    expect(await store.delete('resp_a', null)).toBe(true);
    expect(await store.get('resp_a', null)).toBeUndefined();
    expect(await store.delete('resp_a', null)).toBe(false);
  });

  it('shows a record only to its owner (the API key digest), and lets only its owner delete it', async () => {
    const store = await memoryStore();
    await store.save(record('resp_k', 'digest-a'));
    expect(await store.get('resp_k', 'digest-a')).toBeDefined();
    expect(await store.get('resp_k', 'digest-b')).toBeUndefined();
    expect(await store.get('resp_k', null)).toBeUndefined();
    expect(await store.delete('resp_k', 'digest-b')).toBe(false);
    expect(await store.get('resp_k', 'digest-a')).toBeDefined();
  });

  it('forgets records after the TTL, and beyond maxEntries drops the least recently used', async () => {
    vi.useFakeTimers({ toFake: ['Date'] });
    const store = await memoryStore(10, 4);
    await store.save(record('resp_t'));
    vi.setSystemTime(Date.now() + 9_000);
    expect(await store.get('resp_t', null)).toBeDefined();
    vi.setSystemTime(Date.now() + 2_000);
    expect(await store.get('resp_t', null)).toBeUndefined();

    const small = await memoryStore(60, 4);
    for (let i = 0; i < 8; i++) await small.save(record(`resp_${i}`));
    const kept = await Promise.all([...Array(8).keys()].map(async (i) => (await small.get(`resp_${i}`, null)) !== undefined));
    expect(kept.filter(Boolean).length).toBeLessThanOrEqual(4);
    expect(kept[7]).toBe(true);
  });
});

describe('ResponseStore (in memory): size bound', () => {
  const sized = (id: string, chars: number): StoredResponse => ({
    ...record(id),
    input: [{ id: 'msg_0', type: 'message', role: 'user', content: [{ type: 'input_text', text: 'x'.repeat(chars) }] }],
  });

  it('counts what a record keeps alive: its input, its Response and its whole context (a chain is bounded too)', () => {
    const base = recordSize(record('resp_s'));
    expect(recordSize(sized('resp_s', 1000))).toBeGreaterThan(base + 990);
    const context = Array.from({ length: 100 }, (_, i) => ({ id: `msg_c${i}`, type: 'message', role: 'user' as const, content: 'y'.repeat(1000) }));
    expect(recordSize({ ...record('resp_s'), context })).toBeGreaterThan(base + 100_000);
  });

  it('drops the least recently used records beyond maxBytes, and refuses (false, logged) a record larger than all of it', async () => {
    const log = logger();
    // Room for four of them.
    const store = await memoryStore(60, 100, log, Math.floor(recordSize(sized('resp_0', 1_000)) * 4.5));
    for (let i = 0; i < 6; i++) expect(await store.save(sized(`resp_${i}`, 1_000))).toBe(true);
    const kept = await Promise.all([...Array(6).keys()].map(async (i) => (await store.get(`resp_${i}`, null)) !== undefined));
    expect(kept).toEqual([false, false, true, true, true, true]);
    expect(await store.save(sized('resp_big', 6_000))).toBe(false);
    expect(await store.get('resp_big', null)).toBeUndefined();
    expect(log.warn).toHaveBeenCalledWith(expect.stringContaining('storing response resp_big failed: larger than the in-process store'));
    // What was there is still there.
    expect(await store.get('resp_5', null)).toBeDefined();
  });
});

describe('ResponseStore on an unavailable Redis', () => {
  it('answers 503 to reads and deletes, and false (logged) to saves', async () => {
    const log = logger();
    // As RedisConnection.call while Redis is down: refused without running the operation.
    const redis = { available: false, call: () => Promise.reject(new Error('Redis is unavailable')) } as unknown as RedisConnection;
    const keyv = { get: vi.fn(), set: vi.fn(), delete: vi.fn() };
    const store = new ResponseStore({ keyv: keyv as never, ttlSeconds: 60, redis, logger: log, description: 'test' });
    await expect(store.get('resp_x', null)).rejects.toMatchObject({ status: 503, code: 'store_unavailable' });
    await expect(store.delete('resp_x', null)).rejects.toMatchObject({ status: 503 });
    expect(await store.save(record('resp_x'))).toBe(false);
    expect(log.warn).toHaveBeenCalledWith(expect.stringContaining('storing response resp_x failed'));
    expect(keyv.get).not.toHaveBeenCalled();
    expect(keyv.set).not.toHaveBeenCalled();
  });

  it('treats a Redis call that fails or times out as unavailable', async () => {
    const redis = { available: true, call: <T>(op: () => Promise<T>) => op().then(() => Promise.reject<T>(new Error('Redis did not answer within 500 ms'))) } as unknown as RedisConnection;
    const keyv = { get: vi.fn(() => Promise.resolve(undefined)), set: vi.fn(() => Promise.resolve(true)), delete: vi.fn() };
    const store = new ResponseStore({ keyv: keyv as never, ttlSeconds: 60, redis, logger: logger(), description: 'test' });
    await expect(store.get('resp_x', null)).rejects.toMatchObject({ status: 503 });
    expect(await store.save(record('resp_x'))).toBe(false);
  });
});

describe('parseStoredResponse', () => {
  it('accepts a record and refuses malformed ones', () => {
    expect(parseStoredResponse(record('resp_p'))).toEqual(record('resp_p'));
    const bad: unknown[] = [
      null,
      'x',
      [],
      { ...record('r'), v: 2 },
      { ...record('r'), response: { output: [] } },
      { ...record('r'), response: { id: 'r', output: [{ type: 'message' }] } },
      { ...record('r'), input: [{ type: 'message' }] },
      { ...record('r'), context: 'nope' },
      { ...record('r'), owner: 5 },
    ];
    for (const raw of bad) expect(parseStoredResponse(raw), JSON.stringify(raw)).toBeUndefined();
  });

  it('a malformed record under an id reads as absent, with a warning', async () => {
    const log = logger();
    // As Redis may hold it: another version's record, or a hand-written key.
    const keyv = new Keyv();
    const store = new ResponseStore({ keyv, ttlSeconds: 60, redis: undefined, logger: log, description: 'test' });
    await keyv.set('resp_bad', { v: 1, response: 'garbage' });
    expect(await store.get('resp_bad', null)).toBeUndefined();
    expect(log.warn).toHaveBeenCalledWith(expect.stringContaining('unreadable stored response (resp_bad)'));
    // A record stored under another id than its own is not answered either.
    await keyv.set('resp_other', record('resp_p'));
    expect(await store.get('resp_other', null)).toBeUndefined();
  });
});

function conversation(id: string, owner: string | null = null, texts: string[] = []): StoredConversation {
  return {
    v: 1,
    conversation: { id, object: 'conversation', created_at: 1, metadata: {} },
    items: texts.map((text, i) => ({ id: `msg_${i}`, type: 'message', role: 'user', content: [{ type: 'input_text', text }] })),
    owner,
  };
}

describe('ResponseStore: conversations', () => {
  it('saves, reads (its owner only) and deletes a conversation; a response id and a conversation id never read as each other', async () => {
    const log = logger();
    const store = await memoryStore(60, 100, log);
    expect(await store.saveConversation(conversation('conv_a', 'k1', ['hi']))).toBe(true);
    expect(await store.getConversation('conv_a', 'k1')).toEqual(conversation('conv_a', 'k1', ['hi']));
    expect(await store.getConversation('conv_a', 'k2')).toBeUndefined();
    await store.save(record('resp_a'));
    expect(await store.getConversation('resp_a', null)).toBeUndefined();
    expect(await store.get('conv_a', 'k1')).toBeUndefined();
    expect(log.warn).not.toHaveBeenCalled();
    expect(await store.deleteConversation('conv_a', 'k2')).toBe(false);
    expect(await store.deleteConversation('conv_a', 'k1')).toBe(true);
    expect(await store.getConversation('conv_a', 'k1')).toBeUndefined();
  });

  it('applies concurrent changes one after the other (none lost), and reports a missing conversation', async () => {
    const store = await memoryStore();
    await store.saveConversation(conversation('conv_b', null));
    const append = (text: string) =>
      store.updateConversation('conv_b', null, (c) => ({ ...c, items: [...c.items, { id: `msg_${text}`, type: 'message', role: 'user', content: [{ type: 'input_text', text }] }] }));
    await Promise.all(['1', '2', '3', '4'].map(append));
    expect((await store.getConversation('conv_b', null))?.items.map((item) => item.id)).toEqual(['msg_1', 'msg_2', 'msg_3', 'msg_4']);
    expect(await store.updateConversation('conv_none', null, (c) => c)).toBeUndefined();
    // A change that throws fails that update only; the next ones still run.
    await expect(store.updateConversation('conv_b', null, () => { throw new Error('no'); })).rejects.toThrow('no');
    await append('5');
    expect((await store.getConversation('conv_b', null))?.items).toHaveLength(5);
  });

  it('parseStoredConversation refuses malformed records', () => {
    expect(parseStoredConversation(conversation('conv_c'))).toBeDefined();
    for (const bad of [null, {}, { ...conversation('conv_c'), v: 2 }, { ...conversation('conv_c'), items: [{}] }, { ...conversation('conv_c'), conversation: { id: 'x', object: 'response', metadata: {} } }]) {
      expect(parseStoredConversation(bad), JSON.stringify(bad)).toBeUndefined();
    }
  });
});

describe('ResponseStore: updateResponse', () => {
  it('applies changes to one response one at a time: a finish and a cancel racing, exactly one of them is written', async () => {
    const store = await memoryStore();
    const running = { ...record('resp_r'), response: { ...record('resp_r').response, status: 'in_progress', background: true } };
    await store.save(running);
    const onlyIfRunning = (status: string) => (r: StoredResponse) => (r.response['status'] === 'in_progress' ? { ...r, response: { ...r.response, status } } : undefined);
    const [finish, cancel] = await Promise.all([store.updateResponse('resp_r', null, onlyIfRunning('completed')), store.updateResponse('resp_r', null, onlyIfRunning('cancelled'))]);
    expect(finish.after?.response['status']).toBe('completed');
    // The cancel saw the finish (not the stale in_progress record), and wrote nothing.
    expect(cancel.before?.response['status']).toBe('completed');
    expect(cancel.after).toBeUndefined();
    expect((await store.get('resp_r', null))?.response['status']).toBe('completed');
    expect(await store.updateResponse('resp_none', null, () => record('resp_none'))).toEqual({ before: undefined, after: undefined });
  });

  it('a delete waits for the changes queued before it, and the change after it finds nothing', async () => {
    const store = await memoryStore();
    await store.save(record('resp_d'));
    const [, deleted, later] = await Promise.all([
      store.updateResponse('resp_d', null, (r) => ({ ...r, response: { ...r.response, status: 'completed' } })),
      store.delete('resp_d', null),
      store.updateResponse('resp_d', null, (r) => r),
    ]);
    expect(deleted).toBe(true);
    expect(later).toEqual({ before: undefined, after: undefined });
    expect(await store.get('resp_d', null)).toBeUndefined();
  });
});
