import { randomFillSync } from 'node:crypto';
import type { FinishReason, GenerationResult, TokenUsage, ToolCall, ToolCallPart } from '@infer/model-providers';

/**
 * Random hex for ids, drawn from the CSPRNG 4 KiB at a time: one `randomBytes(12)` per request
 * cost a native call and a Buffer (about 2% of the CPU of a proxied request).
 */
const RANDOM_POOL = Buffer.alloc(4096);
let randomHex = '';
let randomHexOffset = 0;

function randomHex24(): string {
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

export function chatCompletionBody(id: string, created: number, model: string, result: GenerationResult) {
  const calls = result.toolCalls;
  // As OpenAI: an answer that only calls tools has `content: null`.
  const message =
    calls === undefined || calls.length === 0
      ? { role: 'assistant' as const, content: result.text as string | null, refusal: null }
      : { role: 'assistant' as const, content: result.text === '' ? null : result.text, refusal: null, tool_calls: toolCallsBody(calls) };
  return {
    id,
    object: 'chat.completion' as const,
    created,
    model,
    choices: [{ index: 0, message, logprobs: null, finish_reason: result.finishReason }],
    usage: usageBody(result.usage),
  };
}

export function textCompletionBody(id: string, created: number, model: string, result: GenerationResult) {
  return {
    id,
    object: 'text_completion' as const,
    created,
    model,
    choices: [{ index: 0, text: result.text, logprobs: null, finish_reason: result.finishReason }],
    usage: usageBody(result.usage),
  };
}

/**
 * Formats the SSE `data:` payloads of one stream. The constant part of every chunk is
 * serialised once per stream; each delta only costs a JSON.stringify of its text.
 */
export interface ChunkFormatter {
  /** The first event (chat: the assistant role), or undefined. */
  start(): string | undefined;
  delta(text: string): string;
  /** A piece of a tool call (chat only: undefined for text completions, which have no tools). */
  toolCall(part: ToolCallPart): string | undefined;
  finish(reason: FinishReason): string;
  usage(usage: TokenUsage): string;
}

export function chatChunkFormatter(id: string, created: number, model: string): ChunkFormatter {
  const head = `{"id":${JSON.stringify(id)},"object":"chat.completion.chunk","created":${created},"model":${JSON.stringify(model)},"system_fingerprint":null,"choices":`;
  return {
    start: () => `${head}[{"index":0,"delta":{"role":"assistant","content":""},"logprobs":null,"finish_reason":null}]}`,
    delta: (text) => `${head}[{"index":0,"delta":{"content":${JSON.stringify(text)}},"logprobs":null,"finish_reason":null}]}`,
    toolCall: (part) => {
      // OpenAI's form: the first piece of a call has its id, type and name.
      const call =
        part.id === undefined
          ? { index: part.index, function: { arguments: part.arguments } }
          : { index: part.index, id: part.id, type: 'function', function: { name: part.name ?? '', arguments: part.arguments } };
      return `${head}[{"index":0,"delta":{"tool_calls":[${JSON.stringify(call)}]},"logprobs":null,"finish_reason":null}]}`;
    },
    finish: (reason) => `${head}[{"index":0,"delta":{},"logprobs":null,"finish_reason":"${reason}"}]}`,
    usage: (usage) => `${head}[],"usage":${JSON.stringify(usageBody(usage))}}`,
  };
}

export function textChunkFormatter(id: string, created: number, model: string): ChunkFormatter {
  const head = `{"id":${JSON.stringify(id)},"object":"text_completion","created":${created},"model":${JSON.stringify(model)},"system_fingerprint":null,"choices":`;
  return {
    start: () => undefined,
    delta: (text) => `${head}[{"index":0,"text":${JSON.stringify(text)},"logprobs":null,"finish_reason":null}]}`,
    toolCall: () => undefined,
    finish: (reason) => `${head}[{"index":0,"text":"","logprobs":null,"finish_reason":"${reason}"}]}`,
    usage: (usage) => `${head}[],"usage":${JSON.stringify(usageBody(usage))}}`,
  };
}
