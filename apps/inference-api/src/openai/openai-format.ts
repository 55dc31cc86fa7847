import { randomFillSync } from 'node:crypto';
import type { FinishReason, GenerationResult, TokenLogprob, TokenUsage, ToolCall, ToolCallPart, TopLogprob } from '@infer/model-providers';

/**
 * Random hex for ids, drawn from the CSPRNG 4 KiB at a time: one `randomBytes(12)` per request
 * cost a native call and a Buffer (about 2% of the CPU of a proxied request).
 */
const RANDOM_POOL = Buffer.alloc(4096);
let randomHex = '';
let randomHexOffset = 0;

export function randomHex24(): string {
  if (randomHexOffset + 24 > randomHex.length) {
    randomHex = randomFillSync(RANDOM_POOL).toString('hex');
    randomHexOffset = 0;
  }
  const hex = randomHex.slice(randomHexOffset, randomHexOffset + 24);
  randomHexOffset += 24;
  return hex;
}

/** OpenAI-style ids: a prefix and 24 random hex chars. */
export function completionId(prefix: 'chatcmpl' | 'cmpl'): string {
  return `${prefix}-${randomHex24()}`;
}

export function usageBody(usage: TokenUsage) {
  const cached = usage.cachedPromptTokens;
  return cached === undefined
    ? {
        prompt_tokens: usage.promptTokens,
        completion_tokens: usage.completionTokens,
        total_tokens: usage.promptTokens + usage.completionTokens,
      }
    : {
        prompt_tokens: usage.promptTokens,
        completion_tokens: usage.completionTokens,
        total_tokens: usage.promptTokens + usage.completionTokens,
        prompt_tokens_details: { cached_tokens: cached },
      };
}

export function toolCallsBody(calls: readonly ToolCall[]) {
  return calls.map((call) => ({ id: call.id, type: 'function' as const, function: { name: call.name, arguments: call.arguments } }));
}

function chatChoice(index: number, result: GenerationResult) {
  const calls = result.toolCalls;
  // As OpenAI: an answer that only calls tools has `content: null`.
  // As OpenAI: a refusal has `content: null` (unless there was text too).
  const refusal = result.refusal ?? null;
  const message =
    calls === undefined || calls.length === 0
      ? { role: 'assistant' as const, content: refusal !== null && result.text === '' ? null : (result.text as string | null), refusal }
      : { role: 'assistant' as const, content: result.text === '' ? null : result.text, refusal, tool_calls: toolCallsBody(calls) };
  return { index, message, logprobs: result.logprobs === undefined ? null : chatLogprobs(result.logprobs), finish_reason: result.finishReason };
}

function textChoice(index: number, result: GenerationResult) {
  return { index, text: result.text, logprobs: result.logprobs === undefined ? null : textLogprobs(result.logprobs, 0), finish_reason: result.finishReason };
}

export function chatCompletionBody(id: string, created: number, model: string, result: GenerationResult) {
  return { id, object: 'chat.completion' as const, created, model, choices: [chatChoice(0, result)], usage: usageBody(result.usage) };
}

export function textCompletionBody(id: string, created: number, model: string, result: GenerationResult) {
  return { id, object: 'text_completion' as const, created, model, choices: [textChoice(0, result)], usage: usageBody(result.usage) };
}

/** A body with several choices (`n` > 1), one per result, in order; usage as `choicesUsage`. */
export function chatCompletionBodyOf(id: string, created: number, model: string, results: readonly GenerationResult[]) {
  return { id, object: 'chat.completion' as const, created, model, choices: results.map((r, i) => chatChoice(i, r)), usage: usageBody(choicesUsage(results.map((r) => r.usage))) };
}

/** A body with several choices: `n` per prompt of a batch (`perPrompt`), prompt after prompt; usage as `batchUsage`. */
export function textCompletionBodyOf(id: string, created: number, model: string, results: readonly GenerationResult[], perPrompt = results.length) {
  return { id, object: 'text_completion' as const, created, model, choices: results.map((r, i) => textChoice(i, r)), usage: usageBody(batchUsage(results.map((r) => r.usage), perPrompt)) };
}

/**
 * The usage of a request with several choices, as OpenAI counts it: the prompt once (the first
 * choice's, with its cached tokens), the completion tokens of all choices.
 */
export function choicesUsage(usages: readonly TokenUsage[]): TokenUsage {
  const first = usages[0] ?? { promptTokens: 0, completionTokens: 0 };
  let completionTokens = 0;
  for (const usage of usages) completionTokens += usage.completionTokens;
  return first.cachedPromptTokens === undefined
    ? { promptTokens: first.promptTokens, completionTokens }
    : { promptTokens: first.promptTokens, completionTokens, cachedPromptTokens: first.cachedPromptTokens };
}

/**
 * The usage of a completions batch: `perPrompt` choices (`n`) for each prompt in a row, each prompt's
 * group counted as choicesUsage counts one request, the groups added up.
 */
export function batchUsage(usages: readonly TokenUsage[], perPrompt: number): TokenUsage {
  if (usages.length <= perPrompt) return choicesUsage(usages);
  let promptTokens = 0;
  let completionTokens = 0;
  let cached: number | undefined;
  for (let start = 0; start < usages.length; start += perPrompt) {
    const group = choicesUsage(usages.slice(start, start + perPrompt));
    promptTokens += group.promptTokens;
    completionTokens += group.completionTokens;
    if (group.cachedPromptTokens !== undefined) cached = (cached ?? 0) + group.cachedPromptTokens;
  }
  return cached === undefined ? { promptTokens, completionTokens } : { promptTokens, completionTokens, cachedPromptTokens: cached };
}

function topEntry(entry: TopLogprob) {
  return { token: entry.token, logprob: entry.logprob, bytes: entry.bytes ?? null };
}

/** Chat's form: `{content: [{token, logprob, bytes, top_logprobs}], refusal: null}`. */
export function chatLogprobs(entries: readonly TokenLogprob[]) {
  return {
    content: entries.map((entry) => ({ token: entry.token, logprob: entry.logprob, bytes: entry.bytes ?? null, top_logprobs: entry.top.map(topEntry) })),
    refusal: null,
  };
}

/**
 * The legacy completions form: parallel arrays, `top_logprobs` as token → logprob objects, and
 * `text_offset`, each token's character offset in the choice's `text` (from `offset`, where the
 * chunk's text starts in a stream). Offsets add up the tokens' lengths.
 */
export function textLogprobs(entries: readonly TokenLogprob[], offset: number) {
  const tokens: string[] = [];
  const tokenLogprobs: Array<number | null> = [];
  const top: Array<Record<string, number | null>> = [];
  const textOffset: number[] = [];
  let at = offset;
  for (const entry of entries) {
    tokens.push(entry.token);
    tokenLogprobs.push(entry.logprob);
    const alternatives: Record<string, number | null> = {};
    for (const alternative of entry.top) alternatives[alternative.token] = alternative.logprob;
    top.push(alternatives);
    textOffset.push(at);
    at += entry.token.length;
  }
  return { tokens, token_logprobs: tokenLogprobs, top_logprobs: top, text_offset: textOffset };
}

/**
 * Formats the SSE `data:` payloads of one stream. The constant part of every chunk is
 * serialised once per stream; each delta only costs a JSON.stringify of its text.
 */
export interface ChunkFormatter {
  /** The first event of a choice (chat: the assistant role), or undefined. */
  start(index: number): string | undefined;
  /** A text chunk of choice `index`; `logprobs`: its tokens' entries (requests with `logprobs`). */
  delta(text: string, logprobs: readonly TokenLogprob[] | undefined, index: number): string;
  /** A piece of a tool call (chat only: undefined for text completions, which have no tools). */
  toolCall(part: ToolCallPart, index: number): string | undefined;
  /** A piece of a refusal (chat only: undefined for text completions). */
  refusal(text: string, index: number): string | undefined;
  finish(reason: FinishReason, index: number): string;
  usage(usage: TokenUsage): string;
}

export function chatChunkFormatter(id: string, created: number, model: string): ChunkFormatter {
  const head = `{"id":${JSON.stringify(id)},"object":"chat.completion.chunk","created":${created},"model":${JSON.stringify(model)},"system_fingerprint":null,"choices":`;
  return {
    start: (index) => `${head}[{"index":${index},"delta":{"role":"assistant","content":""},"logprobs":null,"finish_reason":null}]}`,
    delta: (text, logprobs, index) =>
      `${head}[{"index":${index},"delta":{"content":${JSON.stringify(text)}},"logprobs":${logprobs === undefined ? 'null' : JSON.stringify(chatLogprobs(logprobs))},"finish_reason":null}]}`,
    toolCall: (part, index) => {
      // OpenAI's form: the first piece of a call has its id, type and name.
      const call =
        part.id === undefined
          ? { index: part.index, function: { arguments: part.arguments } }
          : { index: part.index, id: part.id, type: 'function', function: { name: part.name ?? '', arguments: part.arguments } };
      return `${head}[{"index":${index},"delta":{"tool_calls":[${JSON.stringify(call)}]},"logprobs":null,"finish_reason":null}]}`;
    },
    refusal: (text, index) => `${head}[{"index":${index},"delta":{"refusal":${JSON.stringify(text)}},"logprobs":null,"finish_reason":null}]}`,
    finish: (reason, index) => `${head}[{"index":${index},"delta":{},"logprobs":null,"finish_reason":"${reason}"}]}`,
    usage: (usage) => `${head}[],"usage":${JSON.stringify(usageBody(usage))}}`,
  };
}

export function textChunkFormatter(id: string, created: number, model: string): ChunkFormatter {
  const head = `{"id":${JSON.stringify(id)},"object":"text_completion","created":${created},"model":${JSON.stringify(model)},"system_fingerprint":null,"choices":`;
  // Where the next chunk's text starts in its choice's text (the legacy logprobs' text_offset).
  const offsets: number[] = [0];
  return {
    start: () => undefined,
    delta: (text, logprobs, index) => {
      const offset = offsets[index] ?? 0;
      const entries = logprobs === undefined ? 'null' : JSON.stringify(textLogprobs(logprobs, offset));
      offsets[index] = offset + text.length;
      return `${head}[{"index":${index},"text":${JSON.stringify(text)},"logprobs":${entries},"finish_reason":null}]}`;
    },
    toolCall: () => undefined,
    refusal: () => undefined,
    finish: (reason, index) => `${head}[{"index":${index},"text":"","logprobs":null,"finish_reason":"${reason}"}]}`,
    usage: (usage) => `${head}[],"usage":${JSON.stringify(usageBody(usage))}}`,
  };
}
