import type { FinishReason, GenerationResult, StreamPart, TokenLogprob, TokenUsage, ToolCall } from '@infer/model-providers';

/**
 * What the cache stores: the generated text, not a response body, so one entry answers a JSON
 * request and a streamed one alike (and /predict). Ids and `created` are minted per response.
 */
export interface CacheEntry {
  readonly v: 1;
  readonly text: string;
  readonly finishReason: FinishReason;
  readonly usage: TokenUsage;
  /**
   * Lengths (UTF-16 code units) of the streamed deltas when the entry came from a stream, so a
   * replay has the same chunking. Absent for entries from a JSON response: replayed as one delta.
   */
  readonly chunks?: readonly number[];
  /** The answer's tool calls, when it made any (replayed as one piece per call). */
  readonly toolCalls?: readonly ToolCall[];
  /**
   * The tokens' log probabilities, for a request that asked for them (its `logprobs` is part of the
   * key). Such an entry has no `chunks`: a streamed replay is one delta carrying all of them.
   */
  readonly logprobs?: readonly TokenLogprob[];
  /** The model's refusal, when it refused (replayed as one refusal part after the text). */
  readonly refusal?: string;
  /** When the result was generated (ms since the epoch): the `Age` header. */
  readonly createdAt: number;
}

const FINISH_REASONS: ReadonlySet<string> = new Set<FinishReason>(['stop', 'length', 'content_filter', 'tool_calls']);

export function entryFromResult(result: GenerationResult, createdAt = Date.now(), chunks?: readonly number[]): CacheEntry {
  const text = result.text;
  const finishReason = result.finishReason;
  const usage = { promptTokens: result.usage.promptTokens, completionTokens: result.usage.completionTokens };
  const calls = result.toolCalls;
  if (result.refusal !== undefined) {
    // Rare: the general form, as the logprobs one below.
    const entry: { -readonly [K in keyof CacheEntry]: CacheEntry[K] } = { v: 1, text, finishReason, usage, createdAt, refusal: result.refusal };
    if (result.logprobs !== undefined) entry.logprobs = result.logprobs;
    else if (chunks !== undefined && chunks.length > 1) entry.chunks = chunks;
    if (calls !== undefined && calls.length > 0) entry.toolCalls = calls.map((call) => ({ id: call.id, name: call.name, arguments: call.arguments }));
    return entry;
  }
  if (result.logprobs !== undefined) {
    const entry: { -readonly [K in keyof CacheEntry]: CacheEntry[K] } = { v: 1, text, finishReason, usage, createdAt, logprobs: result.logprobs };
    if (calls !== undefined && calls.length > 0) entry.toolCalls = calls.map((call) => ({ id: call.id, name: call.name, arguments: call.arguments }));
    return entry;
  }
  if (calls !== undefined && calls.length > 0) {
    const toolCalls = calls.map((call) => ({ id: call.id, name: call.name, arguments: call.arguments }));
    return chunks === undefined || chunks.length <= 1
      ? { v: 1, text, finishReason, usage, toolCalls, createdAt }
      : { v: 1, text, finishReason, usage, chunks, toolCalls, createdAt };
  }
  // Plain literals rather than one with a conditional spread: a spread makes V8 give every entry an
  // out-of-object property store (~260 bytes each, measured in a heap snapshot), and the memory
  // cache keeps thousands of entries.
  return chunks === undefined || chunks.length <= 1
    ? { v: 1, text, finishReason, usage, createdAt }
    : { v: 1, text, finishReason, usage, chunks, createdAt };
}

/**
 * Validates whatever came out of the store. Anything unexpected (another writer, a format change,
 * a truncated value, garbage) is a miss, never an error.
 */
export function parseEntry(value: unknown): CacheEntry | undefined {
  if (value === null || typeof value !== 'object') return undefined;
  const e = value as Record<string, unknown>;
  if (e['v'] !== 1 || typeof e['text'] !== 'string' || typeof e['finishReason'] !== 'string' || !FINISH_REASONS.has(e['finishReason'])) {
    return undefined;
  }
  if (!isCount(e['createdAt'])) return undefined;
  const usage = e['usage'] as Record<string, unknown> | null | undefined;
  if (usage === null || typeof usage !== 'object' || !isCount(usage['promptTokens']) || !isCount(usage['completionTokens'])) return undefined;
  const chunks = e['chunks'];
  if (chunks !== undefined) {
    if (!Array.isArray(chunks)) return undefined;
    let total = 0;
    for (const n of chunks) {
      if (!isCount(n) || n === 0) return undefined;
      total += n;
    }
    if (total !== e['text'].length) return undefined;
  }
  const toolCalls = e['toolCalls'];
  if (toolCalls !== undefined) {
    if (!Array.isArray(toolCalls) || toolCalls.length === 0) return undefined;
    for (const call of toolCalls as unknown[]) {
      if (call === null || typeof call !== 'object') return undefined;
      const c = call as Record<string, unknown>;
      if (typeof c['id'] !== 'string' || typeof c['name'] !== 'string' || typeof c['arguments'] !== 'string') return undefined;
    }
  }
  const refusal = e['refusal'];
  if (refusal !== undefined && typeof refusal !== 'string') return undefined;
  const logprobs = e['logprobs'];
  if (logprobs !== undefined) {
    if (chunks !== undefined || !Array.isArray(logprobs)) return undefined;
    for (const entry of logprobs as unknown[]) {
      if (!isLogprob(entry)) return undefined;
      const top = (entry as Record<string, unknown>)['top'];
      if (!Array.isArray(top) || !top.every(isLogprob)) return undefined;
    }
  }
  return value as CacheEntry;
}

/** `{token, logprob, bytes?}` as stored. */
function isLogprob(value: unknown): boolean {
  if (value === null || typeof value !== 'object') return false;
  const e = value as Record<string, unknown>;
  const logprob = e['logprob'];
  const bytes = e['bytes'];
  return (
    typeof e['token'] === 'string' &&
    (logprob === null || (typeof logprob === 'number' && Number.isFinite(logprob))) &&
    (bytes === undefined || (Array.isArray(bytes) && bytes.every((b) => Number.isInteger(b) && b >= 0 && b <= 255)))
  );
}

export function resultOf(entry: CacheEntry): GenerationResult {
  if (entry.logprobs !== undefined || entry.refusal !== undefined) {
    const result: { -readonly [K in keyof GenerationResult]: GenerationResult[K] } = {
      text: entry.text,
      finishReason: entry.finishReason,
      usage: entry.usage,
    };
    if (entry.logprobs !== undefined) result.logprobs = entry.logprobs;
    if (entry.toolCalls !== undefined) result.toolCalls = entry.toolCalls;
    if (entry.refusal !== undefined) result.refusal = entry.refusal;
    return result;
  }
  return entry.toolCalls === undefined
    ? { text: entry.text, finishReason: entry.finishReason, usage: entry.usage }
    : { text: entry.text, finishReason: entry.finishReason, usage: entry.usage, toolCalls: entry.toolCalls };
}

/**
 * The approximate memory of an entry (V8 objects, two bytes per character): O(1) for text answers;
 * entries with logprobs count every token and alternative (they can be megabytes: 20 alternatives,
 * each with its bytes, for every token).
 */
export function entryBytes(entry: CacheEntry): number {
  let bytes = 200 + 2 * entry.text.length + 8 * (entry.chunks?.length ?? 0) + 2 * (entry.refusal?.length ?? 0);
  if (entry.toolCalls !== undefined) for (const call of entry.toolCalls) bytes += 120 + 2 * (call.id.length + call.name.length + call.arguments.length);
  if (entry.logprobs !== undefined) {
    for (const token of entry.logprobs) {
      bytes += 150 + 2 * token.token.length + 16 * (token.bytes?.length ?? 0);
      for (const top of token.top) bytes += 150 + 2 * top.token.length + 16 * (top.bytes?.length ?? 0);
    }
  }
  return bytes;
}

/** Whole seconds since the entry was generated (never negative: clocks of other hosts may be ahead). */
export function ageSeconds(entry: Pick<CacheEntry, 'createdAt'>, now = Date.now()): number {
  return Math.max(0, Math.floor((now - entry.createdAt) / 1000));
}

/** The entry as stream parts: its deltas (with the original chunking when known), its refusal, its tool calls, then the finish. */
export function replayParts(entry: CacheEntry): StreamPart[] {
  const parts: StreamPart[] = [];
  if (entry.logprobs !== undefined) {
    if (entry.text.length > 0 || entry.logprobs.length > 0) parts.push({ type: 'delta', text: entry.text, logprobs: entry.logprobs });
  } else if (entry.chunks === undefined) {
    if (entry.text.length > 0) parts.push({ type: 'delta', text: entry.text });
  } else {
    let offset = 0;
    for (const length of entry.chunks) {
      parts.push({ type: 'delta', text: entry.text.slice(offset, offset + length) });
      offset += length;
    }
  }
  if (entry.refusal !== undefined) parts.push({ type: 'refusal', text: entry.refusal });
  if (entry.toolCalls !== undefined) {
    entry.toolCalls.forEach((call, index) => parts.push({ type: 'tool_call', index, id: call.id, name: call.name, arguments: call.arguments }));
  }
  parts.push({ type: 'finish', finishReason: entry.finishReason, usage: entry.usage });
  return parts;
}

/** An async iterable over a replay (what writeSse consumes). */
export async function* replayStream(entry: CacheEntry): AsyncGenerator<StreamPart> {
  yield* replayParts(entry);
}

function isCount(value: unknown): value is number {
  return typeof value === 'number' && Number.isInteger(value) && value >= 0;
}
