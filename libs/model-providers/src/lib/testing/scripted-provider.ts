/**
 * An in-memory, deterministic ModelProvider with no I/O: replies are derived from the prompt
 * (`<hash> w1 w2 ...`, one word per token), produced one token per `tokenDelayMs`, with a bounded
 * number of concurrent generations (`slots`). Handy for router and API unit tests.
 *
 * With `tools` in a chat request it answers with one tool call (see toolCall()). With `logprobs` each
 * word gets the fake upstream's entry (fakeTokenLogprob): on its delta in streams, all of them on the
 * result otherwise.
 *
 * It can also be told to break the contract on purpose (`bugs`); the conformance kit's own spec
 * uses that to prove each conformance case catches what it claims to.
 */
import { ModelProviderError, abortedError } from '../contract/errors.js';
import { MODEL_PROVIDER_SPEC_VERSION } from '../contract/model-provider.js';
import type {
  CallOptions,
  ChatRequest,
  CompletionRequest,
  EmbeddingRequest,
  EmbeddingResult,
  FinishReason,
  GenerationParams,
  GenerationResult,
  ModelProvider,
  ProviderCapabilities,
  ProviderHealth,
  StreamPart,
  TokenLogprob,
  ToolCall,
} from '../contract/model-provider.js';
import { fakeEmbedding, fakeReplyHash, fakeTokenLogprob } from './fake-upstream.js';

export type ScriptedProviderBug =
  /** Never looks at the AbortSignal. */
  | 'ignores-abort'
  /** Streams end without their finish part. */
  | 'no-finish'
  /** Generates every token whatever maxTokens says. */
  | 'ignores-max-tokens'
  /** A generation slot is only released when a generation completes normally. */
  | 'leaks-on-abort'
  /** The streamed text differs from the non-stream text. */
  | 'stream-mismatch'
  /** Unsupported capabilities throw a plain Error instead of ModelProviderError('not_supported'). */
  | 'wrong-not-supported'
  /** Streamed tool calls start without their id. */
  | 'tool-call-without-id'
  /** embed() returns one vector fewer than there are inputs. */
  | 'embeddings-one-short'
  /** Streams carry no logprobs (non-stream answers do). */
  | 'logprobs-dropped-in-stream';

export interface ScriptedProviderOptions {
  /** Tokens per reply before maxTokens (default 12). */
  readonly tokens?: number;
  /** Delay per generated token, ms (default 1). */
  readonly tokenDelayMs?: number;
  /** Concurrent generations; further calls wait (default 4). */
  readonly slots?: number;
  readonly capabilities?: Partial<ProviderCapabilities>;
  readonly bugs?: readonly ScriptedProviderBug[];
  readonly kind?: string;
}

export class ScriptedProvider implements ModelProvider {
  readonly specificationVersion = MODEL_PROVIDER_SPEC_VERSION;
  readonly kind: string;
  readonly label: string;
  readonly capabilities: ProviderCapabilities;
  /** Generations currently holding a slot. */
  active = 0;
  /** Generations started (a slot was acquired), since creation. */
  started = 0;

  private readonly tokens: number;
  private readonly tokenDelayMs: number;
  private readonly slots: number;
  private readonly bugs: ReadonlySet<ScriptedProviderBug>;
  private readonly waiting: Array<() => void> = [];
  private closed = false;

  constructor(options: ScriptedProviderOptions = {}) {
    this.kind = options.kind ?? 'scripted';
    this.tokens = options.tokens ?? 12;
    this.tokenDelayMs = options.tokenDelayMs ?? 1;
    this.slots = options.slots ?? 4;
    this.bugs = new Set(options.bugs ?? []);
    this.capabilities = { chat: true, completion: true, streaming: true, embeddings: true, tools: true, logprobs: true, ...options.capabilities };
    this.label = `${this.kind}(${this.bugs.size > 0 ? [...this.bugs].join(',') : 'correct'})`;
  }

  async chat(request: ChatRequest, options?: CallOptions): Promise<GenerationResult> {
    this.check('chat', false);
    const call = this.toolCall(request);
    if (call) return this.generateToolCall(call, request, options?.signal);
    return this.generate(chatPrompt(request), request, options?.signal);
  }

  async complete(request: CompletionRequest, options?: CallOptions): Promise<GenerationResult> {
    this.check('completion', false);
    return this.generate(request.prompt, request, options?.signal);
  }

  async *streamChat(request: ChatRequest, options?: CallOptions): AsyncGenerator<StreamPart, void, undefined> {
    this.check('chat', true);
    const call = this.toolCall(request);
    if (call) yield* this.streamToolCall(call, request, options?.signal);
    else yield* this.stream(chatPrompt(request), request, options?.signal);
  }

  async *streamComplete(request: CompletionRequest, options?: CallOptions): AsyncGenerator<StreamPart, void, undefined> {
    this.check('completion', true);
    yield* this.stream(request.prompt, request, options?.signal);
  }

  /** The fake upstream's embeddings (8 values, or `dimensions`), one slot per call like generations. */
  async embed(request: EmbeddingRequest, options?: CallOptions): Promise<EmbeddingResult> {
    if (!this.capabilities.embeddings) {
      throw new ModelProviderError(`${this.label}: embeddings are not supported`, { code: 'not_supported', isRetryable: false });
    }
    const watch = this.bugs.has('ignores-abort') ? undefined : options?.signal;
    if (watch?.aborted) throw abortedError(watch.reason);
    await this.acquire(watch);
    try {
      await sleep(this.tokenDelayMs, watch);
      const inputs = this.bugs.has('embeddings-one-short') ? request.input.slice(1) : request.input;
      return {
        embeddings: inputs.map((text) => fakeEmbedding(text, request.dimensions ?? 8)),
        usage: { promptTokens: request.input.reduce((sum, text) => sum + Math.ceil(text.length / 4), 0) },
      };
    } finally {
      this.release();
    }
  }

  async health(): Promise<ProviderHealth> {
    return this.closed ? { healthy: false, detail: 'closed' } : { healthy: true };
  }

  async close(): Promise<void> {
    this.closed = true;
  }

  private check(kind: 'chat' | 'completion', streaming: boolean): void {
    const missing = !this.capabilities[kind] ? kind : streaming && !this.capabilities.streaming ? 'streaming' : undefined;
    if (missing === undefined) return;
    if (this.bugs.has('wrong-not-supported')) throw new Error(`${missing} is not supported`);
    throw new ModelProviderError(`${this.label}: ${missing} is not supported`, { code: 'not_supported', isRetryable: false });
  }

  private plan(prompt: string, params: GenerationParams): { words: string[]; finishReason: FinishReason } {
    const limit = this.bugs.has('ignores-max-tokens') ? undefined : params.maxTokens;
    const count = limit !== undefined && limit < this.tokens ? limit : this.tokens;
    const hash = fakeReplyHash(prompt);
    const words = Array.from({ length: count }, (_, i) => (i === 0 ? hash : ` w${i}`));
    return { words, finishReason: count < this.tokens ? 'length' : 'stop' };
  }

  private async generate(prompt: string, params: GenerationParams, signal: AbortSignal | undefined): Promise<GenerationResult> {
    let text = '';
    let logprobs: readonly TokenLogprob[] | undefined;
    let finish: StreamPart | undefined;
    for await (const part of this.run(prompt, params, signal, false)) {
      if (part.type === 'delta') {
        text += part.text;
        logprobs = part.logprobs;
      } else finish = part;
    }
    if (finish?.type !== 'finish') throw new ModelProviderError('no finish', { code: 'internal' });
    const result = { text, finishReason: finish.finishReason, usage: finish.usage };
    return logprobs === undefined || logprobs.length === 0 ? result : { ...result, logprobs };
  }

  private async *stream(prompt: string, params: GenerationParams, signal: AbortSignal | undefined): AsyncGenerator<StreamPart> {
    for await (const part of this.run(prompt, params, signal, true)) {
      if (part.type === 'finish' && this.bugs.has('no-finish')) continue;
      if (part.type === 'delta' && this.bugs.has('stream-mismatch')) yield { ...part, text: `${part.text}~` };
      else if (part.type === 'delta' && this.bugs.has('logprobs-dropped-in-stream')) yield { type: 'delta', text: part.text };
      else yield part;
    }
  }

  private async *run(prompt: string, params: GenerationParams, signal: AbortSignal | undefined, streaming: boolean): AsyncGenerator<StreamPart> {
    const watch = this.bugs.has('ignores-abort') ? undefined : signal;
    if (watch?.aborted) throw abortedError(watch.reason);
    await this.acquire(watch);
    let completed = false;
    try {
      const { words, finishReason } = this.plan(prompt, params);
      const top = this.capabilities.logprobs === true ? params.logprobs : undefined;
      const logprobs = top === undefined ? undefined : words.map((word, i) => fakeTokenLogprob(prompt, word, i, top));
      for (let i = 0; i < words.length; i += 1) {
        await sleep(this.tokenDelayMs, watch);
        const text = words[i] as string;
        if (streaming) yield logprobs === undefined ? { type: 'delta', text } : { type: 'delta', text, logprobs: [logprobs[i] as TokenLogprob] };
      }
      if (!streaming) yield logprobs === undefined ? { type: 'delta', text: words.join('') } : { type: 'delta', text: words.join(''), logprobs };
      completed = true;
      yield {
        type: 'finish',
        finishReason,
        usage: { promptTokens: Math.ceil(prompt.length / 4), completionTokens: words.length },
      };
    } finally {
      if (completed || !this.bugs.has('leaks-on-abort')) this.release();
    }
  }

  /**
   * With `tools` (and the capability), a toolChoice other than 'none' and a last message that is not
   * a tool result, the answer is one call: of the named tool, else the first, with arguments
   * `{"input":"<hash of the prompt>"}`.
   */
  private toolCall(request: ChatRequest): ToolCall | undefined {
    const { tools, toolChoice } = request;
    if (!this.capabilities.tools || !tools || tools.length === 0 || toolChoice === 'none') return undefined;
    if (request.messages.at(-1)?.role === 'tool') return undefined;
    const tool = typeof toolChoice === 'object' ? tools.find((t) => t.name === toolChoice.name) : tools[0];
    if (!tool) return undefined;
    const hash = fakeReplyHash(chatPrompt(request));
    return { id: `call_${hash}`, name: tool.name, arguments: JSON.stringify({ input: hash }) };
  }

  private async generateToolCall(call: ToolCall, request: ChatRequest, signal: AbortSignal | undefined): Promise<GenerationResult> {
    for await (const part of this.streamToolCall(call, request, signal)) {
      if (part.type === 'finish') return { text: '', finishReason: part.finishReason, usage: part.usage, toolCalls: [call] };
    }
    throw new ModelProviderError('no finish', { code: 'internal' });
  }

  /** The call as parts: id and name first, then its arguments 4 characters at a time. */
  private async *streamToolCall(call: ToolCall, request: ChatRequest, signal: AbortSignal | undefined): AsyncGenerator<StreamPart> {
    const watch = this.bugs.has('ignores-abort') ? undefined : signal;
    if (watch?.aborted) throw abortedError(watch.reason);
    await this.acquire(watch);
    try {
      await sleep(this.tokenDelayMs, watch);
      yield this.bugs.has('tool-call-without-id')
        ? { type: 'tool_call', index: 0, name: call.name, arguments: '' }
        : { type: 'tool_call', index: 0, id: call.id, name: call.name, arguments: '' };
      let pieces = 1;
      for (let at = 0; at < call.arguments.length; at += 4, pieces += 1) {
        yield { type: 'tool_call', index: 0, arguments: call.arguments.slice(at, at + 4) };
      }
      yield { type: 'finish', finishReason: 'tool_calls', usage: { promptTokens: Math.ceil(chatPrompt(request).length / 4), completionTokens: pieces } };
    } finally {
      this.release();
    }
  }

  private async acquire(signal: AbortSignal | undefined): Promise<void> {
    while (this.active >= this.slots) {
      await new Promise<void>((resolve, reject) => {
        const onAbort = (): void => {
          const index = this.waiting.indexOf(wake);
          if (index !== -1) this.waiting.splice(index, 1);
          reject(abortedError(signal?.reason));
        };
        const wake = (): void => {
          signal?.removeEventListener('abort', onAbort);
          resolve();
        };
        this.waiting.push(wake);
        signal?.addEventListener('abort', onAbort, { once: true });
      });
    }
    this.active += 1;
    this.started += 1;
  }

  private release(): void {
    this.active -= 1;
    this.waiting.shift()?.();
  }
}

function chatPrompt(request: ChatRequest): string {
  return request.messages.map((m) => m.content).join('\n');
}

function sleep(ms: number, signal: AbortSignal | undefined): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) {
      reject(abortedError(signal.reason));
      return;
    }
    const onAbort = (): void => {
      clearTimeout(timer);
      reject(abortedError(signal?.reason));
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}
