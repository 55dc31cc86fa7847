import { describe, expect, it } from 'vitest';
import { ageSeconds, entryFromResult, parseEntry, replayParts, resultOf } from './cache-entry.js';

const result = { text: 'hello world', finishReason: 'stop' as const, usage: { promptTokens: 3, completionTokens: 2 } };

describe('cache entry', () => {
  it('round-trips through JSON and validates', () => {
    const entry = entryFromResult(result, 1_000, [5, 6]);
    expect(parseEntry(JSON.parse(JSON.stringify(entry)))).toEqual(entry);
  });

  it('treats anything malformed as a miss', () => {
    const good = entryFromResult(result, 1_000, [5, 6]);
    const bad: unknown[] = [
      null, 'garbage', 42, [], {},
      { ...good, v: 2 },
      { ...good, text: 5 },
      { ...good, finishReason: 'exploded' },
      { ...good, usage: { promptTokens: -1, completionTokens: 2 } },
      { ...good, usage: null },
      { ...good, createdAt: 'yesterday' },
      { ...good, chunks: [5, 5] },
      { ...good, chunks: [11, 0] },
      { ...good, chunks: 'x' },
    ];
    for (const value of bad) expect(parseEntry(value), JSON.stringify(value)).toBeUndefined();
  });

  it('replays with the original chunking, then the finish part', () => {
    expect(replayParts(entryFromResult(result, 0, [5, 6]))).toEqual([
      { type: 'delta', text: 'hello' },
      { type: 'delta', text: ' world' },
      { type: 'finish', finishReason: 'stop', usage: { promptTokens: 3, completionTokens: 2 } },
    ]);
    expect(replayParts(entryFromResult(result, 0))).toEqual([
      { type: 'delta', text: 'hello world' },
      { type: 'finish', finishReason: 'stop', usage: { promptTokens: 3, completionTokens: 2 } },
    ]);
    expect(replayParts(entryFromResult({ ...result, text: '' }, 0))).toHaveLength(1);
  });

  it('keeps tool calls: validated, round-tripped, replayed whole after the text', () => {
    const toolCalls = [
      { id: 'c1', name: 'f', arguments: '{"a":1}' },
      { id: 'c2', name: 'g', arguments: '' },
    ];
    const entry = entryFromResult({ ...result, text: '', finishReason: 'tool_calls', toolCalls }, 1_000);
    expect(parseEntry(JSON.parse(JSON.stringify(entry)))).toEqual(entry);
    expect(resultOf(entry)).toEqual({ text: '', finishReason: 'tool_calls', usage: result.usage, toolCalls });
    expect(replayParts(entry)).toEqual([
      { type: 'tool_call', index: 0, id: 'c1', name: 'f', arguments: '{"a":1}' },
      { type: 'tool_call', index: 1, id: 'c2', name: 'g', arguments: '' },
      { type: 'finish', finishReason: 'tool_calls', usage: result.usage },
    ]);
    // Text and calls together, with the stream's chunking.
    const both = entryFromResult({ ...result, toolCalls: toolCalls.slice(0, 1) }, 1_000, [5, 6]);
    expect(replayParts(both).map((p) => p.type)).toEqual(['delta', 'delta', 'tool_call', 'finish']);
    // No calls: no field (the entry keeps its compact shape).
    expect(Object.keys(entryFromResult({ ...result, toolCalls: [] }))).not.toContain('toolCalls');
    for (const bad of [[], 'x', [null], [{ id: 'c1', name: 'f' }], [{ id: 1, name: 'f', arguments: '' }]]) {
      expect(parseEntry({ ...entry, toolCalls: bad }), JSON.stringify(bad)).toBeUndefined();
    }
  });

  it('keeps log probabilities: validated, round-tripped, replayed as one delta with all of them', () => {
    const logprobs = [
      { token: 'He', logprob: -0.5, bytes: [72, 101], top: [{ token: 'He', logprob: -0.5 }, { token: 'Hi', logprob: -1 }] },
      { token: '', logprob: null, top: [] },
      { token: 'llo', logprob: -0.25, top: [] },
    ];
    const entry = entryFromResult({ text: 'Hello', finishReason: 'stop', usage: { promptTokens: 1, completionTokens: 3 }, logprobs }, 5, [2, 3]);
    expect(entry.chunks).toBeUndefined();
    const stored = parseEntry(JSON.parse(JSON.stringify(entry)));
    expect(stored).toEqual(entry);
    expect(resultOf(stored!).logprobs).toEqual(logprobs);
    expect(replayParts(stored!)).toEqual([
      { type: 'delta', text: 'Hello', logprobs },
      { type: 'finish', finishReason: 'stop', usage: { promptTokens: 1, completionTokens: 3 } },
    ]);
    for (const bad of [
      { ...entry, logprobs: 'x' },
      { ...entry, logprobs: [{ token: 1, logprob: -1, top: [] }] },
      { ...entry, logprobs: [{ token: 'a', logprob: 'x', top: [] }] },
      { ...entry, logprobs: [{ token: 'a', logprob: -1 }] },
      { ...entry, logprobs: [{ token: 'a', logprob: -1, top: [{ token: 'b', logprob: -2, bytes: [300] }] }] },
      { ...entry, chunks: [5] },
    ]) {
      expect(parseEntry(bad), JSON.stringify(bad)).toBeUndefined();
    }
  });

  it('keeps a refusal: validated, round-tripped, replayed after the text, with the chunking kept', () => {
    const refused = { text: '', finishReason: 'stop' as const, usage: { promptTokens: 3, completionTokens: 2 }, refusal: 'No.' };
    const entry = entryFromResult(refused, 1_000);
    expect(parseEntry(JSON.parse(JSON.stringify(entry)))).toEqual(entry);
    expect(resultOf(entry)).toEqual(refused);
    expect(replayParts(entry)).toEqual([{ type: 'refusal', text: 'No.' }, { type: 'finish', finishReason: 'stop', usage: refused.usage }]);
    const both = entryFromResult({ ...result, refusal: 'but no' }, 1_000, [5, 6]);
    expect(replayParts(both).map((part) => part.type)).toEqual(['delta', 'delta', 'refusal', 'finish']);
    expect(parseEntry({ ...entry, refusal: 5 })).toBeUndefined();
  });

  it('computes Age in whole seconds, never negative', () => {
    const entry = entryFromResult(result, 10_000);
    expect(ageSeconds(entry, 12_999)).toBe(2);
    expect(ageSeconds(entry, 5_000)).toBe(0);
  });
});
