import { describe, expect, it } from 'vitest';
import { SseParser } from './sse-parser.js';
import type { SseEvent } from './sse-parser.js';

function parseAll(chunks: ReadonlyArray<string | Uint8Array>): SseEvent[] {
  const parser = new SseParser();
  return [...chunks.flatMap((chunk) => parser.push(chunk)), ...parser.end()];
}

const STREAM =
  ': keepalive\n\n' +
  'data: {"a":1}\n\n' +
  'event: ping\ndata: x\n\n' +
  'data: line one\ndata: line two\n\n' +
  'data:no-space\n\n' +
  'id: 7\nretry: 100\ndata: {"b":"é ✓ 😀"}\n\n' +
  'data: [DONE]\n\n';

const EXPECTED: SseEvent[] = [
  { event: 'message', data: '{"a":1}' },
  { event: 'ping', data: 'x' },
  { event: 'message', data: 'line one\nline two' },
  { event: 'message', data: 'no-space' },
  { event: 'message', data: '{"b":"é ✓ 😀"}' },
  { event: 'message', data: '[DONE]' },
];

describe('SseParser', () => {
  it('parses several events in one chunk, skipping comments', () => {
    expect(parseAll([STREAM])).toEqual(EXPECTED);
  });

  it('gives the same events whatever the chunking, even inside a UTF-8 character', () => {
    const bytes = new TextEncoder().encode(STREAM);
    for (let cut = 1; cut < bytes.length; cut += 1) {
      expect(parseAll([bytes.subarray(0, cut), bytes.subarray(cut)]), `cut at byte ${cut}`).toEqual(EXPECTED);
    }
    expect(parseAll(Array.from(bytes, (b) => Uint8Array.of(b))), 'one byte per chunk').toEqual(EXPECTED);
  });

  it('accepts \\r\\n and \\r line endings, also when a CRLF is split across chunks', () => {
    const crlf = STREAM.replaceAll('\n', '\r\n');
    expect(parseAll([crlf])).toEqual(EXPECTED);
    for (let cut = 1; cut < crlf.length; cut += 1) {
      expect(parseAll([crlf.slice(0, cut), crlf.slice(cut)]), `cut at ${cut}`).toEqual(EXPECTED);
    }
    expect(parseAll([STREAM.replaceAll('\n', '\r')])).toEqual(EXPECTED);
  });

  it('returns events as soon as their blank line arrives', () => {
    const parser = new SseParser();
    expect(parser.push('data: one\n')).toEqual([]);
    expect(parser.push('\ndata: tw')).toEqual([{ event: 'message', data: 'one' }]);
    expect(parser.push('o\n\n')).toEqual([{ event: 'message', data: 'two' }]);
  });

  it('dispatches a last event that lacks its blank line at the end, and ignores a BOM', () => {
    expect(parseAll(['\uFEFFdata: a\n\ndata: [DONE]'])).toEqual([
      { event: 'message', data: 'a' },
      { event: 'message', data: '[DONE]' },
    ]);
    expect(parseAll(['data: a\n\n: trailing comment'])).toEqual([{ event: 'message', data: 'a' }]);
  });
});

describe('SseParser limits', () => {
  it('throws when an unfinished line or one event grows past maxLineLength', () => {
    expect(() => new SseParser(10).push('data: 0123456789')).toThrow(RangeError);
    const parser = new SseParser(10);
    parser.push('data: 01234\n');
    expect(() => parser.push('data: 56789\n')).toThrow(/event's data is longer than 10/);
    const fine = new SseParser(10);
    expect(fine.push('data: 0123\n\ndata: 4567\n\n').map((e) => e.data)).toEqual(['0123', '4567']);
  });
});
