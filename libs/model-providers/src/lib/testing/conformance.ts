/**
 * The model-provider conformance kit: what a team runs to prove its provider keeps the contract
 * (in the spirit of Keyv's `@keyv/test-suite`). A provider's whole conformance spec is:
 *
 * ```ts
 * import { runModelProviderConformance } from '@infer/model-providers/testing';
 * runModelProviderConformance({ name: 'my-provider', create: () => createMyProvider(), deterministic: true });
 * ```
 *
 * It registers one vitest `describe` block (so it must be called at the top level of a spec file).
 * One provider instance is created for the whole block (`init()` is called when present) and closed
 * by the last case. Every case has an id (see MODEL_PROVIDER_CONFORMANCE_CASES) usable in `skip`.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ModelProviderError } from '../contract/errors.js';
import type {
  CallOptions,
  ChatMessage,
  ChatRequest,
  CompletionRequest,
  FinishReason,
  GenerationResult,
  ModelProvider,
  StreamPart,
  TokenLogprob,
  TokenUsage,
  ToolCall,
  ToolDefinition,
} from '../contract/model-provider.js';
import { MODEL_PROVIDER_SPEC_VERSION } from '../contract/model-provider.js';
import { addToolCallPart, type ToolCallDraft } from '../contract/tool-call-parts.js';

/** The ids of the conformance cases, in the order they run. */
export const MODEL_PROVIDER_CONFORMANCE_CASES = [
  'metadata',
  'capabilities',
  'chat',
  'completion',
  'max-tokens',
  'stream-chat',
  'stream-completion',
  'deterministic',
  'tools',
  'logprobs',
  'embeddings',
  'pre-aborted',
  'abort-mid-stream',
  'early-return',
  'no-leak-after-abort',
  'concurrency',
  'health',
  'close',
] as const;
export type ModelProviderConformanceCase = (typeof MODEL_PROVIDER_CONFORMANCE_CASES)[number];

export interface ModelProviderConformanceOptions {
  /** Shown in the describe block's title. */
  readonly name: string;
  /** Creates the provider under test (once for the whole suite). */
  readonly create: () => ModelProvider | Promise<ModelProvider>;
  /**
   * The same request at temperature 0 gives the same text. Enables the checks that compare a
   * stream with its non-stream twin, repeated requests, and that truncation reports 'length'.
   */
  readonly deterministic?: boolean;
  /** Per-case timeout in ms (default 30 000). */
  readonly timeoutMs?: number;
  /** Case ids (MODEL_PROVIDER_CONFORMANCE_CASES) to skip, e.g. `['concurrency']` for a slow model. */
  readonly skip?: readonly string[];
  /** maxTokens of ordinary requests (default 8): keep it small for slow providers. */
  readonly maxTokens?: number;
  /** maxTokens of the streams that get aborted mid-way (default 64): long enough to still be running. */
  readonly longMaxTokens?: number;
  /** How long an abort may take to end a call, in ms (default 2 000). */
  readonly abortTimeoutMs?: number;
  /**
   * Number of aborted calls, then of follow-up concurrent calls, used to detect leaked capacity
   * (sockets, sequences, slots). Set it above the provider's pool size (default 16).
   */
  readonly capacityProbe?: number;
  /** Number of concurrent calls in the 'concurrency' case (default 8). */
  readonly concurrency?: number;
  /** Chat messages used by the cases (default: a short system + user exchange). */
  readonly messages?: readonly ChatMessage[];
  /** Completion prompt used by the cases. */
  readonly prompt?: string;
}

const FINISH_REASONS: readonly FinishReason[] = ['stop', 'length', 'content_filter', 'tool_calls'];

const DEFAULT_MESSAGES: readonly ChatMessage[] = [
  { role: 'system', content: 'You are a terse assistant.' },
  { role: 'user', content: 'Tell me a story about a lighthouse.' },
];
const DEFAULT_PROMPT = 'Once upon a time, in a lighthouse by the sea,';

/** The tool of the 'tools' case. */
const CONFORMANCE_TOOL: ToolDefinition = {
  name: 'get_weather',
  description: 'Get the current weather in a city.',
  parameters: { type: 'object', properties: { city: { type: 'string', description: 'The city name' } }, required: ['city'] },
};

export interface CollectedStream {
  /** Every part, in order. */
  readonly parts: readonly StreamPart[];
  /** The texts of the delta parts, in order. */
  readonly deltas: readonly string[];
  /** The deltas joined. */
  readonly text: string;
  /** The finish part, when one was yielded (the last one if, wrongly, several were). */
  readonly finish: Extract<StreamPart, { type: 'finish' }> | undefined;
  /** The tool call parts joined into calls, by index (what a client does with the deltas). */
  readonly toolCalls: readonly ToolCall[];
  /** The logprobs of the delta parts, joined in order (empty when none carried any). */
  readonly logprobs: readonly TokenLogprob[];
  /** The refusal parts joined (undefined when there were none). */
  readonly refusal: string | undefined;
}

/** Consumes a provider stream to its end. Errors thrown by the stream propagate. */
export async function collectStream(stream: AsyncIterable<StreamPart>): Promise<CollectedStream> {
  const parts: StreamPart[] = [];
  for await (const part of stream) parts.push(part);
  const deltas = parts.flatMap((part) => (part.type === 'delta' ? [part.text] : []));
  const finishes = parts.filter((part): part is Extract<StreamPart, { type: 'finish' }> => part.type === 'finish');
  const toolCalls: ToolCallDraft[] = [];
  for (const part of parts) if (part.type === 'tool_call') addToolCallPart(toolCalls, part);
  const logprobs = parts.flatMap((part) => (part.type === 'delta' && part.logprobs !== undefined ? part.logprobs : []));
  const refusals = parts.flatMap((part) => (part.type === 'refusal' ? [part.text] : []));
  return { parts, deltas, text: deltas.join(''), finish: finishes.at(-1), toolCalls, logprobs, refusal: refusals.length === 0 ? undefined : refusals.join('') };
}

/** Asserts that `usage` holds non-negative integers. */
export function expectValidUsage(usage: TokenUsage): void {
  expect(usage, 'usage').toBeDefined();
  for (const key of ['promptTokens', 'completionTokens'] as const) {
    const value = usage[key];
    expect(Number.isInteger(value), `usage.${key} (${String(value)}) is an integer`).toBe(true);
    expect(value, `usage.${key}`).toBeGreaterThanOrEqual(0);
  }
  const cached = usage.cachedPromptTokens;
  if (cached !== undefined) {
    expect(Number.isInteger(cached) && cached >= 0 && cached <= usage.promptTokens, `usage.cachedPromptTokens (${cached}) is within 0..promptTokens`).toBe(true);
  }
}

/** Asserts the shape of a non-stream result: non-empty text, a known finish reason, valid usage. */
export function expectValidGenerationResult(result: GenerationResult): void {
  expect(typeof result.text, 'result.text is a string').toBe('string');
  expect(result.text.length, 'result.text is not empty').toBeGreaterThan(0);
  expect(FINISH_REASONS, 'result.finishReason').toContain(result.finishReason);
  expectValidUsage(result.usage);
}

/**
 * Asserts the shape of a stream: only 'delta' (and 'tool_call', 'refusal') parts, then exactly one 'finish'
 * part, last; non-empty text. Each tool call's first part carries its id and name; calls are
 * numbered 0, 1, ... in the order they start.
 */
export function expectValidStream(collected: CollectedStream, options: { allowEmptyText?: boolean } = {}): void {
  const { parts } = collected;
  expect(parts.length, 'the stream yielded parts').toBeGreaterThan(0);
  let calls = 0;
  parts.forEach((part, index) => {
    if (index < parts.length - 1) {
      expect(['delta', 'tool_call', 'refusal'], `part ${index} of ${parts.length} is a delta, refusal or tool_call (only the last part is the finish)`).toContain(
        part.type,
      );
    }
    if (part.type === 'delta') expect(typeof part.text, `part ${index}.text is a string`).toBe('string');
    if (part.type === 'tool_call') {
      expect(typeof part.arguments, `part ${index}.arguments is a string`).toBe('string');
      expect(part.index, `part ${index}: tool call index ${part.index} after ${calls} calls`).toBeLessThanOrEqual(calls);
      if (part.index === calls) {
        calls += 1;
        expect(typeof part.id === 'string' && part.id.length > 0, `part ${index}: the first part of tool call ${part.index} has an id`).toBe(true);
        expect(typeof part.name === 'string' && part.name.length > 0, `part ${index}: the first part of tool call ${part.index} has a name`).toBe(true);
      }
    }
  });
  const last = parts[parts.length - 1];
  expect(last?.type, 'the last part is the finish part').toBe('finish');
  if (last?.type === 'finish') {
    expect(FINISH_REASONS, 'finish.finishReason').toContain(last.finishReason);
    expectValidUsage(last.usage);
  }
  if (!options.allowEmptyText) expect(collected.text.length, 'the streamed text is not empty').toBeGreaterThan(0);
}

/**
 * Asserts the shape of logprobs entries: a string token, a log probability that is null or a finite
 * number <= 0 (its alternatives' too), bytes (when given) of 0..255, and at most `maxTop`
 * alternatives, most likely first.
 */
export function expectValidLogprobs(entries: readonly TokenLogprob[], maxTop: number, what = 'logprobs'): void {
  const valid = (logprob: number | null): boolean => logprob === null || (Number.isFinite(logprob) && logprob <= 0);
  entries.forEach((entry, i) => {
    expect(typeof entry.token, `${what}[${i}].token is a string`).toBe('string');
    expect(valid(entry.logprob), `${what}[${i}].logprob (${String(entry.logprob)}) is null or a finite number <= 0`).toBe(true);
    if (entry.bytes !== undefined) {
      const bytes = entry.bytes.every((b) => Number.isInteger(b) && b >= 0 && b <= 255);
      expect(bytes, `${what}[${i}].bytes are bytes`).toBe(true);
    }
    expect(Array.isArray(entry.top), `${what}[${i}].top is an array`).toBe(true);
    expect(entry.top.length, `${what}[${i}].top has at most ${maxTop} entries`).toBeLessThanOrEqual(maxTop);
    entry.top.forEach((alternative, j) => {
      expect(typeof alternative.token, `${what}[${i}].top[${j}].token is a string`).toBe('string');
      expect(valid(alternative.logprob), `${what}[${i}].top[${j}].logprob (${String(alternative.logprob)}) is null or a finite number <= 0`).toBe(true);
      const before = j === 0 ? Infinity : (entry.top[j - 1]?.logprob ?? -Infinity);
      expect((alternative.logprob ?? -Infinity) <= before, `${what}[${i}].top is sorted, most likely first (at ${j})`).toBe(true);
    });
  });
}

/** Runs `operation` and returns the error it throws (fails when it does not throw). */
export async function captureError(operation: () => unknown): Promise<unknown> {
  try {
    await operation();
  } catch (error) {
    return error;
  }
  throw new Error('Expected the operation to throw, but it completed');
}

/** Asserts `error` is a ModelProviderError with `code`. */
export function expectProviderError(error: unknown, code: ModelProviderError['code']): void {
  expect(error, `a ModelProviderError ("${code}") was thrown, got: ${describeError(error)}`).toBeInstanceOf(
    ModelProviderError,
  );
  expect((error as ModelProviderError).code, `error code (${describeError(error)})`).toBe(code);
}

function describeError(error: unknown): string {
  if (error instanceof Error) {
    const code = (error as { code?: unknown }).code;
    return `${error.name}${code === undefined ? '' : `[${String(code)}]`}: ${error.message}`;
  }
  return String(error);
}

/** Rejects with a clear message when `promise` does not settle within `ms`. */
export async function withinMs<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} did not settle within ${ms} ms`)), ms);
  });
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

type Kind = 'chat' | 'completion';

export function runModelProviderConformance(options: ModelProviderConformanceOptions): void {
  const timeoutMs = options.timeoutMs ?? 30_000;
  const maxTokens = options.maxTokens ?? 8;
  const longMaxTokens = options.longMaxTokens ?? 64;
  const abortTimeoutMs = options.abortTimeoutMs ?? 2_000;
  const capacityProbe = options.capacityProbe ?? 16;
  const concurrency = options.concurrency ?? 8;
  const deterministic = options.deterministic ?? false;
  const skip = new Set(options.skip ?? []);
  for (const id of skip) {
    if (!(MODEL_PROVIDER_CONFORMANCE_CASES as readonly string[]).includes(id)) {
      throw new Error(
        `runModelProviderConformance: unknown case "${id}" in skip (known: ${MODEL_PROVIDER_CONFORMANCE_CASES.join(', ')})`,
      );
    }
  }
  const messages = options.messages ?? DEFAULT_MESSAGES;
  const prompt = options.prompt ?? DEFAULT_PROMPT;

  let provider: ModelProvider | undefined;
  let closed = false;

  const current = (): ModelProvider => {
    if (!provider) throw new Error('The provider was not created (see the error of the beforeAll hook)');
    return provider;
  };
  const chatRequest = (extra: Partial<ChatRequest> = {}): ChatRequest => ({
    messages,
    maxTokens,
    temperature: 0,
    ...extra,
  });
  const completionRequest = (extra: Partial<CompletionRequest> = {}): CompletionRequest => ({
    prompt,
    maxTokens,
    temperature: 0,
    ...extra,
  });
  const supports = (kind: Kind): boolean => current().capabilities[kind];
  const supportsStream = (kind: Kind): boolean => supports(kind) && current().capabilities.streaming;
  const generate = (kind: Kind, params: Partial<ChatRequest & CompletionRequest> = {}, call?: CallOptions) =>
    kind === 'chat'
      ? current().chat(chatRequest(params), call)
      : current().complete(completionRequest(params), call);
  const stream = (kind: Kind, params: Partial<ChatRequest & CompletionRequest> = {}, call?: CallOptions) =>
    kind === 'chat'
      ? current().streamChat(chatRequest(params), call)
      : current().streamComplete(completionRequest(params), call);
  /** The kinds this provider can stream; the abort cases need at least one. */
  const streamKinds = (): Kind[] => (['chat', 'completion'] as const).filter((kind) => supportsStream(kind));
  const generateKinds = (): Kind[] => (['chat', 'completion'] as const).filter((kind) => supports(kind));

  /** When the running case times out (vitest's own timeout, minus a margin for a clearer message). */
  let caseDeadline = 0;
  const left = (): number => Math.max(50, caseDeadline - Date.now());

  /** Starts a long stream, waits for its first delta, aborts, and checks it ends promptly with 'aborted'. */
  const abortMidStream = async (kind: Kind): Promise<void> => {
    const controller = new AbortController();
    const iterator = stream(kind, { maxTokens: longMaxTokens }, { signal: controller.signal })[Symbol.asyncIterator]();
    const first = await withinMs(iterator.next(), left(), `the first part of a ${kind} stream (leaked capacity?)`);
    expect(first.done, 'the stream yielded a first part').toBe(false);
    expect(first.value?.type, 'the first part of a long stream is a delta').toBe('delta');
    controller.abort();
    const outcome = await withinMs(
      (async (): Promise<{ ended: string } | { error: unknown }> => {
        try {
          for (;;) {
            const next = await iterator.next();
            if (next.done) return { ended: 'ended normally' };
            if (next.value.type === 'finish') return { ended: 'yielded a finish part' };
          }
        } catch (error) {
          return { error };
        }
      })(),
      abortTimeoutMs,
      `the aborted ${kind} stream`,
    );
    if ('ended' in outcome) {
      await iterator.return?.();
      expect.fail(`The ${kind} stream ${outcome.ended} after its signal was aborted, instead of throwing 'aborted'`);
    }
    expectProviderError(outcome.error, 'aborted');
  };

  /** Starts a long stream, takes its first delta, and stops iterating (iterator.return()). */
  const returnEarly = async (kind: Kind): Promise<void> => {
    let seen = 0;
    await withinMs(
      (async () => {
        for await (const part of stream(kind, { maxTokens: longMaxTokens })) {
          if (part.type === 'delta') seen += 1;
          break;
        }
      })(),
      left(),
      `a ${kind} stream the consumer stopped early (leaked capacity?)`,
    );
    expect(seen, 'the stream yielded a delta before the consumer stopped').toBe(1);
  };

  const preAborted = async (kind: Kind, streaming: boolean): Promise<void> => {
    const call = { signal: AbortSignal.abort() };
    const what = `a ${kind}${streaming ? ' stream' : ''} call with a pre-aborted signal`;
    const outcome = await withinMs(
      (async (): Promise<{ error: unknown } | { completed: true }> => {
        try {
          if (!streaming) await generate(kind, {}, call);
          else {
            for await (const part of stream(kind, {}, call)) {
              return { error: new Error(`${what} yielded a ${part.type} part instead of throwing 'aborted'`) };
            }
          }
          return { completed: true };
        } catch (error) {
          return { error };
        }
      })(),
      abortTimeoutMs,
      what,
    );
    if ('completed' in outcome) expect.fail(`${what} completed instead of rejecting with 'aborted'`);
    expectProviderError(outcome.error, 'aborted');
  };

  const caseIt = (id: ModelProviderConformanceCase, title: string, fn: () => Promise<void>): void => {
    const name = `[${id}] ${title}`;
    if (skip.has(id)) it.skip(name, fn);
    else {
      it(
        name,
        async () => {
          caseDeadline = Date.now() + timeoutMs - Math.min(250, timeoutMs / 10);
          await fn();
        },
        timeoutMs,
      );
    }
  };

  describe.sequential(`model provider conformance: ${options.name}`, () => {
    beforeAll(async () => {
      provider = await options.create();
      if (provider.init) await provider.init();
    }, Math.max(timeoutMs, 60_000));

    afterAll(async () => {
      if (provider && !closed) {
        closed = true;
        await provider.close();
      }
    }, timeoutMs);

    caseIt('metadata', 'declares the v1 specification, a kind and a label', async () => {
      const p = current();
      expect(p.specificationVersion).toBe(MODEL_PROVIDER_SPEC_VERSION);
      expect(typeof p.kind).toBe('string');
      expect(p.kind.length).toBeGreaterThan(0);
      expect(typeof p.label).toBe('string');
      expect(p.label.length).toBeGreaterThan(0);
      for (const key of ['chat', 'completion', 'streaming', 'embeddings'] as const) {
        expect(typeof p.capabilities[key], `capabilities.${key} is a boolean`).toBe('boolean');
      }
      expect(p.capabilities.chat || p.capabilities.completion, 'supports chat or completion').toBe(true);
    });

    caseIt('capabilities', "an unsupported capability throws ModelProviderError 'not_supported'", async () => {
      const p = current();
      const unsupported: Array<[string, () => Promise<unknown>]> = [];
      if (!p.capabilities.chat) {
        unsupported.push(['chat', () => p.chat(chatRequest())]);
        unsupported.push(['streamChat', () => collectStream(p.streamChat(chatRequest()))]);
      }
      if (!p.capabilities.completion) {
        unsupported.push(['complete', () => p.complete(completionRequest())]);
        unsupported.push(['streamComplete', () => collectStream(p.streamComplete(completionRequest()))]);
      }
      if (!p.capabilities.streaming) {
        if (p.capabilities.chat) unsupported.push(['streamChat', () => collectStream(p.streamChat(chatRequest()))]);
        if (p.capabilities.completion) {
          unsupported.push(['streamComplete', () => collectStream(p.streamComplete(completionRequest()))]);
        }
      }
      for (const [method, call] of unsupported) {
        const error = await captureError(call);
        expect(ModelProviderError.isInstance(error), `${method}() throws a ModelProviderError`).toBe(true);
        expect((error as ModelProviderError).code, `${method}() error code`).toBe('not_supported');
        expect((error as ModelProviderError).isRetryable, `${method}() not_supported is not retryable`).toBe(false);
      }
    });

    caseIt('chat', 'chat() returns non-empty text, a valid finish reason and usage', async () => {
      if (!supports('chat')) return;
      const result = await generate('chat');
      expectValidGenerationResult(result);
      expect(result.usage.completionTokens).toBeLessThanOrEqual(maxTokens);
    });

    caseIt('completion', 'complete() returns non-empty text, a valid finish reason and usage', async () => {
      if (!supports('completion')) return;
      const result = await generate('completion');
      expectValidGenerationResult(result);
      expect(result.usage.completionTokens).toBeLessThanOrEqual(maxTokens);
    });

    caseIt('max-tokens', "maxTokens is respected, and truncation reports 'length'", async () => {
      const cap = 2;
      for (const kind of generateKinds()) {
        const full = await generate(kind, { maxTokens: Math.max(maxTokens, cap + 2) });
        const truncated = await generate(kind, { maxTokens: cap });
        expectValidUsage(truncated.usage);
        expect(truncated.usage.completionTokens, `${kind}: completionTokens <= maxTokens`).toBeLessThanOrEqual(cap);
        const wasCut = full.usage.completionTokens > cap;
        if (deterministic && wasCut) {
          expect(truncated.finishReason, `${kind}: a reply cut by maxTokens finishes with 'length'`).toBe('length');
        } else {
          expect(['stop', 'length'], `${kind}: finishReason`).toContain(truncated.finishReason);
        }
        if (supportsStream(kind)) {
          const streamed = await collectStream(stream(kind, { maxTokens: cap }));
          expectValidStream(streamed, { allowEmptyText: true });
          expect(streamed.finish?.usage.completionTokens, `${kind} stream: completionTokens <= maxTokens`).toBeLessThanOrEqual(
            cap,
          );
          if (deterministic && wasCut) expect(streamed.finish?.finishReason, `${kind} stream: finishReason`).toBe('length');
        }
      }
    });

    for (const kind of ['chat', 'completion'] as const) {
      caseIt(
        kind === 'chat' ? 'stream-chat' : 'stream-completion',
        `${kind} streams yield only deltas then exactly one finish part${deterministic ? ', matching the non-stream text' : ''}`,
        async () => {
          if (!supportsStream(kind)) return;
          const streamed = await collectStream(stream(kind));
          expectValidStream(streamed);
          expect(streamed.finish?.usage.completionTokens).toBeLessThanOrEqual(maxTokens);
          if (deterministic) {
            const whole = await generate(kind);
            expect(streamed.text, 'the concatenated deltas equal the non-stream text').toBe(whole.text);
            expect(streamed.finish?.finishReason, 'the stream and non-stream finish reasons match').toBe(whole.finishReason);
          }
        },
      );
    }

    caseIt('deterministic', 'the same request at temperature 0 gives the same text', async () => {
      if (!deterministic) return;
      for (const kind of generateKinds()) {
        const [a, b] = [await generate(kind), await generate(kind)];
        expect(b.text, `${kind}: repeated request`).toBe(a.text);
      }
    });

    caseIt('tools', 'with tools and toolChoice "required", chat calls a declared tool, streamed alike; a tool result gets a text answer', async () => {
      const p = current();
      if (p.capabilities.tools !== true || !p.capabilities.chat) return;
      const ask = chatRequest({ tools: [CONFORMANCE_TOOL], toolChoice: 'required', maxTokens: Math.max(maxTokens, 64) });
      const result = await p.chat(ask);
      expectValidUsage(result.usage);
      expect(result.finishReason, 'the finish reason of an answer with tool calls').toBe('tool_calls');
      const calls = result.toolCalls ?? [];
      expect(calls.length, 'the answer has tool calls').toBeGreaterThan(0);
      for (const call of calls) {
        expect(typeof call.id === 'string' && call.id.length > 0, 'a tool call has an id').toBe(true);
        expect(call.name, 'a tool call names a declared tool').toBe(CONFORMANCE_TOOL.name);
        expect(typeof call.arguments, 'tool call arguments are a string').toBe('string');
      }
      if (p.capabilities.streaming) {
        const streamed = await collectStream(p.streamChat(ask));
        expectValidStream(streamed, { allowEmptyText: true });
        expect(streamed.finish?.finishReason, 'the finish reason of a stream with tool calls').toBe('tool_calls');
        expect(streamed.toolCalls.length, 'the stream has tool calls').toBeGreaterThan(0);
        if (deterministic) {
          const strip = (list: readonly ToolCall[]) => list.map(({ name, arguments: args }) => ({ name, arguments: args }));
          expect(strip(streamed.toolCalls), 'the streamed calls equal the non-stream calls').toEqual(strip(calls));
        }
      }
      const answer = await p.chat(
        chatRequest({
          tools: [CONFORMANCE_TOOL],
          toolChoice: 'none',
          messages: [
            ...messages,
            { role: 'assistant', content: '', toolCalls: calls },
            ...calls.map((call) => ({ role: 'tool' as const, content: '{"temperature_c":21}', toolCallId: call.id })),
          ],
        }),
      );
      expectValidGenerationResult(answer);
    });

    caseIt('logprobs', 'with logprobs, answers and stream deltas carry valid log probabilities, streamed alike; without, none', async () => {
      if (current().capabilities.logprobs !== true) return;
      for (const kind of generateKinds()) {
        // Chat asks for 2 alternatives, completions for none (0: the chosen token's own logprob), for
        // which OpenAI's legacy completions API gives up to one more than asked (the sampled token).
        const top = kind === 'chat' ? 2 : 0;
        const maxTop = kind === 'chat' ? top : top + 1;
        const whole = await generate(kind, { logprobs: top });
        expectValidUsage(whole.usage);
        const entries = whole.logprobs ?? [];
        if (whole.text.length > 0) expect(entries.length, `${kind}: an answer with text has logprobs`).toBeGreaterThan(0);
        expectValidLogprobs(entries, maxTop, `${kind}: result.logprobs`);
        expect((await generate(kind)).logprobs ?? [], `${kind}: a request without logprobs gets none`).toHaveLength(0);
        if (!supportsStream(kind)) continue;
        const streamed = await collectStream(stream(kind, { logprobs: top }));
        expectValidStream(streamed, { allowEmptyText: true });
        if (streamed.text.length > 0) {
          expect(streamed.logprobs.length, `${kind} stream: a stream with text has delta logprobs`).toBeGreaterThan(0);
        }
        expectValidLogprobs(streamed.logprobs, maxTop, `${kind} stream: the deltas' logprobs`);
        if (deterministic) {
          const tokens = (list: readonly TokenLogprob[]) => list.map((entry) => entry.token);
          expect(tokens(streamed.logprobs), `${kind}: the stream's logprob tokens are the non-stream answer's`).toEqual(tokens(entries));
        }
        const plain = await collectStream(stream(kind));
        expect(plain.logprobs, `${kind} stream: without logprobs, no delta carries any`).toHaveLength(0);
      }
    });

    caseIt('embeddings', 'embed() gives one finite, non-zero vector per input, all of one length; the same text gives the same vector', async () => {
      const p = current();
      if (!p.capabilities.embeddings) {
        if (p.embed) {
          const error = await captureError(() => (p.embed as NonNullable<ModelProvider['embed']>)({ input: ['x'] }));
          expectProviderError(error, 'not_supported');
        }
        return;
      }
      expect(typeof p.embed, 'capabilities.embeddings is true: embed() is implemented').toBe('function');
      const embed = (p.embed as NonNullable<ModelProvider['embed']>).bind(p);
      const inputs = ['The lighthouse keeper', 'a quiet harbour at dawn', 'The lighthouse keeper'];
      const result = await embed({ input: inputs });
      expect(result.embeddings.length, 'one vector per input').toBe(inputs.length);
      const size = result.embeddings[0]?.length ?? 0;
      expect(size, 'vectors are not empty').toBeGreaterThan(0);
      for (const [i, vector] of result.embeddings.entries()) {
        expect(vector.length, `vector ${i} has the length of the others`).toBe(size);
        expect(vector.every((x) => Number.isFinite(x)), `vector ${i} holds finite numbers`).toBe(true);
        expect(vector.some((x) => x !== 0), `vector ${i} is not all zeros`).toBe(true);
      }
      expect(result.embeddings[2], 'the same text gives the same vector').toEqual(result.embeddings[0]);
      expectValidUsage({ promptTokens: result.usage.promptTokens, completionTokens: 0 });
      const single = await embed({ input: [inputs[1] as string] });
      expect(single.embeddings, 'a vector does not depend on the other inputs of its request').toEqual([result.embeddings[1]]);
      await expect(embed({ input: ['x'] }, { signal: AbortSignal.abort() })).rejects.toMatchObject({ code: 'aborted' });
    });

    caseIt('pre-aborted', "a pre-aborted signal rejects with 'aborted' without generating", async () => {
      for (const kind of generateKinds()) {
        await preAborted(kind, false);
        if (supportsStream(kind)) await preAborted(kind, true);
      }
    });

    caseIt('abort-mid-stream', "aborting mid-stream ends the stream promptly with 'aborted'", async () => {
      for (const kind of streamKinds()) await abortMidStream(kind);
    });

    caseIt('early-return', 'a consumer that stops iterating early releases the stream', async () => {
      for (const kind of streamKinds()) {
        await returnEarly(kind);
        expectValidGenerationResult(await generate(kind));
      }
    });

    caseIt('no-leak-after-abort', 'after many aborted calls the provider still serves more requests than its pool', async () => {
      const kinds = streamKinds();
      for (let i = 0; i < capacityProbe; i += 1) {
        if (kinds.length > 0) {
          const kind = kinds[i % kinds.length] as Kind;
          if (i % 2 === 0) await abortMidStream(kind);
          else await returnEarly(kind);
        }
        // A non-stream call aborted while it waits for the upstream/model.
        const kind = generateKinds()[0] as Kind;
        const controller = new AbortController();
        const pending = generate(kind, { maxTokens: longMaxTokens }, { signal: controller.signal });
        controller.abort();
        const error = await withinMs(
          pending.then(
            () => undefined,
            (e: unknown) => e,
          ),
          abortTimeoutMs,
          'an aborted non-stream call',
        );
        // The call may legitimately have finished before the abort was noticed.
        if (error !== undefined) expectProviderError(error, 'aborted');
      }
      const followUps = Array.from({ length: capacityProbe }, async (_, i): Promise<string> => {
        if (i % 2 === 1 && kinds.length > 0) {
          const streamed = await collectStream(stream(kinds[i % kinds.length] as Kind));
          expectValidStream(streamed);
          return streamed.text;
        }
        const result = await generate(generateKinds()[i % generateKinds().length] as Kind);
        expectValidGenerationResult(result);
        return result.text;
      });
      await withinMs(Promise.all(followUps), left(), `${capacityProbe} concurrent calls after aborted ones (leaked capacity?)`);
    });

    caseIt('concurrency', 'concurrent requests all succeed', async () => {
      const kinds = generateKinds();
      const calls = Array.from({ length: concurrency }, async (_, i) => {
        const kind = kinds[i % kinds.length] as Kind;
        // Each kind gets both stream and non-stream calls.
        if (Math.floor(i / kinds.length) % 2 === 1 && supportsStream(kind)) {
          const streamed = await collectStream(stream(kind));
          expectValidStream(streamed);
          return { kind, text: streamed.text };
        }
        const result = await generate(kind);
        expectValidGenerationResult(result);
        return { kind, text: result.text };
      });
      const results = await withinMs(Promise.all(calls), left(), `${concurrency} concurrent calls`);
      if (deterministic) {
        for (const kind of kinds) {
          const texts = new Set(results.filter((r) => r.kind === kind).map((r) => r.text));
          expect(texts.size, `${kind}: concurrent identical requests give the same text`).toBe(1);
        }
      }
    });

    caseIt('health', 'health() reports healthy', async () => {
      const health = await current().health();
      expect(health.healthy, `health detail: ${health.detail ?? '(none)'}`).toBe(true);
      if (health.detail !== undefined) expect(typeof health.detail).toBe('string');
    });

    caseIt('close', 'close() resolves', async () => {
      closed = true;
      await withinMs(current().close(), timeoutMs, 'close()');
    });
  });
}
