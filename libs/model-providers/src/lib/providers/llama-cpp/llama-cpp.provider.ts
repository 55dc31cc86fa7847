/**
 * The `llama-cpp` provider: a GGUF model loaded in-process with node-llama-cpp.
 *
 * - One model and one context per provider; the context has `sequences` parallel sequences that
 *   llama.cpp decodes together in one batch. Each request takes a sequence from a FIFO pool
 *   (waiting when all are busy, up to `maxQueue`), and gives it back. There is no global lock.
 * - Prompt cache (`promptCache`, default on): a sequence keeps its evaluated tokens after a request
 *   that succeeded, a new request gets the free sequence sharing the longest prefix with its prompt,
 *   and node-llama-cpp evaluates only the rest. A failed or aborted request's sequence is cleared.
 * - Chat goes through LlamaChat with the chat wrapper resolved from the model's own template
 *   (`tokenizer.chat_template`); completion through LlamaCompletion.
 * - Parallel sequences are guarded against a logits race in node-llama-cpp (see logits-race-guard.ts).
 * - Prompts are measured before anything runs: a prompt (plus an explicit maxTokens) that does not
 *   fit the context fails with 'context_length_exceeded' instead of node-llama-cpp's silent
 *   truncation or history compression.
 * - OpenAI's `response_format` (JSON, JSON Schema), from the request's `extra`, constrains sampling
 *   with a grammar (response-format.ts).
 * - vLLM's and llama.cpp server's extra sampling fields (`logit_bias`, `top_k`, `min_p`,
 *   `repetition_penalty`), from `extra`, are honoured (sampling-extras.ts), and so is the legacy
 *   completions' `echo`; a non-empty `suffix` is refused.
 * - Embeddings come from a separate embedding context (one sequence, created on the first embed()
 *   call, same context size and threads), one input at a time, L2-normalised as OpenAI's are.
 */
import { randomInt } from 'node:crypto';
import { basename, isAbsolute, join, resolve } from 'node:path';
import { tmpdir } from 'node:os';
import type {
  ChatHistoryItem,
  ChatWrapper,
  LLamaChatGenerateResponseOptions,
  LlamaCompletionGenerationOptions,
  LlamaContext,
  LlamaContextSequence,
  LlamaEmbeddingContext,
  LlamaModel,
  Token,
  TokenBias,
} from 'node-llama-cpp';
import { abortedError, ModelProviderError } from '../../contract/errors.js';
import {
  MODEL_PROVIDER_SPEC_VERSION,
  type CallOptions,
  type ChatMessage,
  type ChatRequest,
  type CompletionRequest,
  type EmbeddingRequest,
  type EmbeddingResult,
  type FinishReason,
  type GenerationParams,
  type GenerationResult,
  type ModelProvider,
  type ProviderCapabilities,
  type ProviderHealth,
  type StreamPart,
} from '../../contract/model-provider.js';
import type { ProviderContext } from '../../registry/provider-definition.js';
import { ensureTinyLlamaGguf, LARGE_TINY_LLAMA_SPEC, DEFAULT_TINY_LLAMA_SPEC, tinyLlamaGgufFileName, type TinyLlamaSpec } from '../../gguf/tiny-llama.js';
import { LLAMA_CPP_DEFAULTS, type LlamaCppChatWrapperName, type LlamaCppProviderOptions } from './llama-cpp.options.js';
import { GrammarCache, type ResponseFormat, responseFormatOf } from './response-format.js';
import { completionEchoOf, type SamplingExtras, samplingExtrasOf } from './sampling-extras.js';
import { getSharedLlama, loadNodeLlamaCpp, type NodeLlamaCpp } from './llama-runtime.js';
import { guardLogitsReorderRace } from './logits-race-guard.js';
import { SequencePool } from './sequence-pool.js';
import { TextChannel } from './text-channel.js';

export const LLAMA_CPP_PROVIDER_KIND = 'llama-cpp';

/** `modelPath` values that name the project's own tiny models (written on first use). */
export const BUILTIN_LLAMA_CPP_MODELS: Readonly<Record<string, TinyLlamaSpec>> = {
  'builtin:tiny-llama': DEFAULT_TINY_LLAMA_SPEC,
  'builtin:tiny-llama-large': LARGE_TINY_LLAMA_SPEC,
};

interface ResolvedOptions {
  readonly modelPath: string;
  readonly builtin: TinyLlamaSpec | undefined;
  readonly threads: number;
  readonly contextSize: number | undefined;
  readonly sequences: number;
  readonly maxQueue: number;
  readonly promptCache: boolean;
  readonly batchSize: number | undefined;
  readonly maxTokens: number;
  readonly systemPrompt: string | undefined;
  readonly chatWrapper: LlamaCppChatWrapperName;
  readonly gpu: boolean;
}

interface Loaded {
  readonly lib: NodeLlamaCpp;
  readonly model: LlamaModel;
  readonly context: LlamaContext;
  readonly pool: SequencePool<LlamaContextSequence>;
  readonly chatWrapper: ChatWrapper;
  /** Grammars for `response_format` (JSON, JSON Schema), compiled on first use. */
  readonly grammars: GrammarCache;
  /** Tokens of context per sequence (what llama.cpp actually allocated). */
  readonly contextSize: number;
  /** Tokens in the model's vocabulary, from the GGUF metadata (bounds logit_bias); undefined if it does not say. */
  readonly vocabularySize: number | undefined;
  /**
   * Most characters of text that can fit in the context: a text longer than this cannot tokenize to
   * fewer than `contextSize` tokens, and is refused before it is tokenized (llama.cpp's tokenizer runs
   * synchronously, and on ~1 MB of text it would hold the event loop for many seconds).
   */
  readonly maxPromptChars: number;
  readonly modelPath: string;
}

type Kind = 'chat' | 'completion';

/** A request measured and ready to run on a sequence. */
interface Prepared {
  readonly promptTokens: number;
  /** The prompt's tokens (for a chat, as the chat wrapper renders the history): what the prompt cache matches. */
  readonly tokens: readonly Token[];
  readonly maxTokens: number;
  readonly run: (
    sequence: LlamaContextSequence,
    signal: AbortSignal,
    onText: ((text: string) => void) | undefined,
  ) => Promise<{ readonly text: string; readonly stopReason: StopReason }>;
}

type StopReason = 'eogToken' | 'stopGenerationTrigger' | 'functionCalls' | 'maxTokens' | 'abort' | 'customStopTrigger';

export class LlamaCppProvider implements ModelProvider {
  readonly specificationVersion = MODEL_PROVIDER_SPEC_VERSION;
  readonly kind = LLAMA_CPP_PROVIDER_KIND;
  readonly label: string;
  /** No logprobs: node-llama-cpp's LlamaChat and LlamaCompletion expose no per-token probabilities. */
  readonly capabilities: ProviderCapabilities = Object.freeze({ chat: true, completion: true, streaming: true, embeddings: true, logprobs: false });

  private readonly options: ResolvedOptions;
  private loading: Promise<Loaded> | undefined;
  private loaded: Loaded | undefined;
  private loadFailure: unknown;
  private closed = false;
  private closing: Promise<void> | undefined;
  private readonly closeController = new AbortController();
  private readonly running = new Set<Promise<unknown>>();
  private busy = 0;
  /** The embedding context, created on the first embed() call. */
  private embedding: Promise<LlamaEmbeddingContext> | undefined;

  constructor(
    options: LlamaCppProviderOptions,
    private readonly context: ProviderContext,
  ) {
    this.options = resolveOptions(options, context);
    this.label = `${LLAMA_CPP_PROVIDER_KIND}(${options.modelPath.startsWith('builtin:') ? options.modelPath : basename(this.options.modelPath)}, ${context.modelName})`;
  }

  async init(): Promise<void> {
    await this.ensureLoaded();
  }

  chat(request: ChatRequest, options?: CallOptions): Promise<GenerationResult> {
    return this.generate('chat', request, options?.signal, undefined);
  }

  streamChat(request: ChatRequest, options?: CallOptions): AsyncIterable<StreamPart> {
    return this.stream('chat', request, options?.signal);
  }

  async complete(request: CompletionRequest, options?: CallOptions): Promise<GenerationResult> {
    const result = await this.generate('completion', request, options?.signal, undefined);
    return completionEchoOf(request.extra) ? { ...result, text: request.prompt + result.text } : result;
  }

  streamComplete(request: CompletionRequest, options?: CallOptions): AsyncIterable<StreamPart> {
    return this.stream('completion', request, options?.signal);
  }

  embed(request: EmbeddingRequest, options?: CallOptions): Promise<EmbeddingResult> {
    return this.tracked(options?.signal, (signal) => this.runEmbeddings(request, signal));
  }

  async health(): Promise<ProviderHealth> {
    if (this.closed) return { healthy: false, detail: 'closed' };
    const loaded = this.loaded;
    if (loaded) {
      const { pool } = loaded;
      return {
        healthy: true,
        detail:
          `${basename(loaded.modelPath)} loaded; ${this.busy}/${pool.size} sequences busy, ${pool.waiting} queued; ` +
          `context ${loaded.contextSize} tokens per sequence; threads ${this.options.threads}`,
      };
    }
    if (this.loading) return { healthy: false, detail: 'loading the model' };
    if (this.loadFailure !== undefined) return { healthy: false, detail: `the model failed to load: ${errorMessage(this.loadFailure)}` };
    return { healthy: false, detail: 'the model is not loaded yet (init() was not called)' };
  }

  close(): Promise<void> {
    this.closing ??= this.doClose();
    return this.closing;
  }

  // ---------------------------------------------------------------------------------------------

  private async doClose(): Promise<void> {
    this.closed = true;
    this.closeController.abort(closedError());
    const loading = this.loading;
    this.loaded?.pool.close(closedError());
    await Promise.allSettled([...this.running]);
    const loaded = await loading?.catch(() => undefined);
    if (!loaded) return;
    loaded.pool.close(closedError());
    await (await this.embedding?.catch(() => undefined))?.dispose();
    await loaded.context.dispose();
    await loaded.model.dispose();
    this.loaded = undefined;
  }

  private ensureLoaded(): Promise<Loaded> {
    if (this.closed) return Promise.reject(closedError());
    this.loading ??= this.load().then(
      (loaded) => {
        this.loaded = loaded;
        this.loadFailure = undefined;
        return loaded;
      },
      (error: unknown) => {
        this.loading = undefined;
        this.loadFailure = error;
        throw error;
      },
    );
    return this.loading;
  }

  private async load(): Promise<Loaded> {
    const started = performance.now();
    const { builtin, gpu, threads, sequences, batchSize } = this.options;
    try {
      const modelPath = builtin ? await ensureTinyLlamaGguf(this.options.modelPath, builtin) : this.options.modelPath;
      const lib = await loadNodeLlamaCpp();
      const llama = await getSharedLlama({ gpu, logger: this.context.logger });
      const model = await llama.loadModel({ modelPath });
      try {
        const contextSize = this.options.contextSize ?? Math.min(LLAMA_CPP_DEFAULTS.maxContextSize, model.trainContextSize);
        const context = await model.createContext({
          contextSize,
          sequences,
          threads,
          ...(batchSize === undefined ? {} : { batchSize }),
        });
        if (sequences > 1 && !guardLogitsReorderRace(context)) {
          this.context.logger.warn(
            { provider: this.label },
            'could not install the logits-reorder guard (node-llama-cpp internals changed): parallel sequences may swap tokens',
          );
        }
        const { maxQueue } = this.options;
        const pool = new SequencePool(
          Array.from({ length: sequences }, () => context.getSequence()),
          maxQueue,
          () =>
            new ModelProviderError(
              `${this.label} is overloaded: all ${sequences} sequences are busy and ${maxQueue} requests are waiting (maxQueue). Retry later.`,
              { code: 'rate_limited', isRetryable: true, retryAfterSeconds: 1 },
            ),
        );
        const chatWrapper =
          this.options.chatWrapper === 'auto' ? lib.resolveChatWrapper(model) : lib.resolveChatWrapper(model, { type: this.options.chatWrapper });
        const loaded: Loaded = {
          lib,
          model,
          context,
          pool,
          chatWrapper,
          grammars: new GrammarCache(llama),
          contextSize: context.contextSize,
          vocabularySize: vocabularySizeOf(model),
          maxPromptChars: context.contextSize * longestTokenChars(model) * 2,
          modelPath,
        };
        if (this.closed) {
          await context.dispose();
          throw closedError();
        }
        this.context.logger.info(
          {
            provider: this.label,
            modelPath,
            loadMs: Math.round(performance.now() - started),
            contextSize: context.contextSize,
            sequences,
            threads,
            chatWrapper: chatWrapper.wrapperName,
          },
          'llama.cpp model loaded',
        );
        return loaded;
      } catch (error) {
        await model.dispose();
        throw error;
      }
    } catch (error) {
      if (ModelProviderError.isInstance(error)) throw error;
      this.context.logger.error({ provider: this.label, err: error }, 'llama.cpp model failed to load');
      throw new ModelProviderError(`Could not load the model ${this.options.modelPath}: ${errorMessage(error)}`, {
        code: 'upstream_unavailable',
        isRetryable: true,
        cause: error,
      });
    }
  }

  private async *stream(kind: Kind, request: ChatRequest | CompletionRequest, signal: AbortSignal | undefined): AsyncGenerator<StreamPart> {
    if (signal?.aborted) throw abortedError(signal.reason);
    // `echo`: the prompt goes first, once the request passed validation (its first text, or its end).
    let echo = kind === 'completion' && completionEchoOf(request.extra) ? (request as CompletionRequest).prompt : undefined;
    // Our own controller, so that a consumer that stops iterating also stops the generation.
    const controller = new AbortController();
    const forward = (): void => controller.abort(signal?.reason);
    signal?.addEventListener('abort', forward, { once: true });
    const channel = new TextChannel();
    const result = this.generate(kind, request, controller.signal, (text) => channel.push(text)).then(
      (value) => {
        channel.end();
        return value;
      },
      (error: unknown) => {
        channel.fail(error);
        throw error;
      },
    );
    result.catch(() => undefined); // observed through the channel
    let finished = false;
    try {
      for (let text = await channel.next(); text !== undefined; text = await channel.next()) {
        if (echo !== undefined) {
          yield { type: 'delta', text: echo };
          echo = undefined;
        }
        yield { type: 'delta', text };
      }
      const { finishReason, usage } = await result;
      finished = true;
      if (echo !== undefined) yield { type: 'delta', text: echo };
      yield { type: 'finish', finishReason, usage };
    } finally {
      signal?.removeEventListener('abort', forward);
      if (!finished) {
        controller.abort(abortedError());
        await result.catch(() => undefined);
      }
    }
  }

  /**
   * Runs one request: measure, wait for a sequence, generate, give the sequence back.
   * Rejects with `abortedError()` as soon as `signal` aborts; the sequence is returned to the pool
   * (cleared) once node-llama-cpp has actually stopped, in the background.
   */
  private async generate(
    kind: Kind,
    request: ChatRequest | CompletionRequest,
    signal: AbortSignal | undefined,
    onText: ((text: string) => void) | undefined,
  ): Promise<GenerationResult> {
    return this.tracked(signal, (linked) => this.runOnSequence(kind, request, linked, onText));
  }

  /**
   * Runs `work` with a signal that also aborts on close(), tracked so close() waits for it. Rejects
   * as soon as `signal` aborts (the work itself ends in the background).
   */
  private async tracked<T>(signal: AbortSignal | undefined, work: (signal: AbortSignal) => Promise<T>): Promise<T> {
    if (signal?.aborted) throw abortedError(signal.reason);
    const link = linkSignals(signal, this.closeController.signal);
    try {
      const running = work(link.signal);
      const settled = running.catch(() => undefined);
      this.running.add(settled);
      void settled.finally(() => this.running.delete(settled));
      return await raceAbort(running, link.signal, () => (signal?.aborted ? abortedError(signal.reason) : closedError()));
    } finally {
      link.dispose();
    }
  }

  private async runEmbeddings(request: EmbeddingRequest, signal: AbortSignal): Promise<EmbeddingResult> {
    const loaded = await this.ensureLoaded();
    const size = loaded.model.embeddingVectorSize;
    if (request.dimensions !== undefined && request.dimensions !== size) {
      throw new ModelProviderError(`This model's embeddings have ${size} dimensions: 'dimensions' must be ${size} or absent.`, {
        code: 'invalid_request',
        param: 'dimensions',
      });
    }
    if (request.input.length === 0) throw new ModelProviderError('input must hold at least one text', { code: 'invalid_request', param: 'input' });
    const context = await this.embeddingContext(loaded);
    // Measure everything first: an input that does not fit fails the request before any work.
    let promptTokens = 0;
    request.input.forEach((text, i) => {
      assertFitsUnread(loaded, text.length, `input[${i}]`);
      const tokens = context.calculateInputLength(text);
      if (text.length === 0 || tokens === 0) throw new ModelProviderError(`input[${i}] is empty`, { code: 'invalid_request', param: `input[${i}]` });
      if (tokens >= loaded.contextSize) {
        throw new ModelProviderError(`input[${i}] has ${tokens} tokens; this model embeds at most ${loaded.contextSize - 1}.`, {
          code: 'context_length_exceeded',
          param: `input[${i}]`,
        });
      }
      promptTokens += tokens;
    });
    const embeddings: number[][] = [];
    for (const text of request.input) {
      if (signal.aborted) throw abortedError(signal.reason);
      try {
        embeddings.push(unitLength((await context.getEmbeddingFor(text)).vector));
      } catch (error) {
        if (signal.aborted) throw abortedError(error);
        throw new ModelProviderError(`llama.cpp embedding failed: ${errorMessage(error)}`, { code: 'internal', cause: error });
      }
    }
    return { embeddings, usage: { promptTokens } };
  }

  private embeddingContext(loaded: Loaded): Promise<LlamaEmbeddingContext> {
    this.embedding ??= loaded.model
      .createEmbeddingContext({
        contextSize: loaded.contextSize,
        // A whole input is evaluated in one batch.
        batchSize: loaded.contextSize,
        threads: this.options.threads,
      })
      .catch((error: unknown) => {
        this.embedding = undefined;
        throw new ModelProviderError(`Could not create the llama.cpp embedding context: ${errorMessage(error)}`, { code: 'internal', cause: error });
      });
    return this.embedding;
  }

  private async runOnSequence(
    kind: Kind,
    request: ChatRequest | CompletionRequest,
    signal: AbortSignal,
    onText: ((text: string) => void) | undefined,
  ): Promise<GenerationResult> {
    const loaded = await this.ensureLoaded();
    const prepared = kind === 'chat' ? this.prepareChat(loaded, request as ChatRequest) : this.prepareCompletion(loaded, request as CompletionRequest);
    const tokens = prepared.tokens as Token[];
    const sequence = await loaded.pool.acquire(
      signal,
      this.options.promptCache ? (candidate) => candidate.compareContextTokens(tokens).firstDifferentIndex : undefined,
    );
    this.busy += 1;
    const outputBefore = sequence.tokenMeter.usedOutputTokens;
    // The prefix node-llama-cpp will reuse (it always evaluates the prompt's last token again).
    const cachedPromptTokens = Math.min(sequence.compareContextTokens(tokens).firstDifferentIndex, Math.max(0, prepared.promptTokens - 1));
    let completed = false;
    try {
      const { text, stopReason } = await prepared.run(sequence, signal, onText);
      if (stopReason === 'abort') throw abortedError();
      completed = true;
      return {
        text,
        finishReason: toFinishReason(stopReason),
        usage: { promptTokens: prepared.promptTokens, completionTokens: sequence.tokenMeter.usedOutputTokens - outputBefore, cachedPromptTokens },
      };
    } catch (error) {
      if (signal.aborted) throw ModelProviderError.isInstance(signal.reason) ? signal.reason : abortedError(error);
      if (ModelProviderError.isInstance(error)) throw error;
      throw new ModelProviderError(`llama.cpp generation failed: ${errorMessage(error)}`, { code: 'internal', cause: error });
    } finally {
      this.busy -= 1;
      await this.recycle(loaded, sequence, completed && this.options.promptCache);
    }
  }

  /**
   * Returns a used sequence to the pool: with its tokens kept for the prompt cache, or cleared (a
   * fresh one replaces it if clearing fails).
   */
  private async recycle(loaded: Loaded, sequence: LlamaContextSequence, keep: boolean): Promise<void> {
    try {
      if (!keep) await sequence.clearHistory();
      loaded.pool.release(sequence);
    } catch (error) {
      if (this.closed || loaded.context.disposed) return;
      this.context.logger.warn({ provider: this.label, err: error }, 'could not clear a llama.cpp sequence; replacing it');
      await sequence.dispose().catch(() => undefined);
      loaded.pool.release(loaded.context.getSequence());
    }
  }

  private prepareChat(loaded: Loaded, request: ChatRequest): Prepared {
    if (request.messages.length === 0) {
      throw new ModelProviderError('messages must contain at least one message', { code: 'invalid_request', param: 'messages' });
    }
    const history = toChatHistory(request.messages, this.options.systemPrompt);
    let chars = 0;
    for (const message of request.messages) chars += message.content.length;
    assertFitsUnread(loaded, chars, 'messages');
    let tokens: Token[];
    try {
      const { contextText } = loaded.chatWrapper.generateContextState({ chatHistory: history });
      tokens = contextText.tokenize(loaded.model.tokenizer);
    } catch (error) {
      throw new ModelProviderError(`The model's chat template cannot render these messages: ${errorMessage(error)}`, {
        code: 'invalid_request',
        param: 'messages',
        cause: error,
      });
    }
    const promptTokens = tokens.length;
    const maxTokens = this.budget(loaded, promptTokens, request, 'messages');
    const format = responseFormatOf(request.extra);
    loaded.grammars.check(format);
    const extras = samplingExtrasOf(request.extra, loaded.vocabularySize);
    return {
      promptTokens,
      tokens,
      maxTokens,
      run: async (sequence, signal, onText) => {
        const grammar = await grammarFor(loaded, format);
        const chat = new loaded.lib.LlamaChat({ contextSequence: sequence, chatWrapper: loaded.chatWrapper, autoDisposeSequence: false });
        try {
          const options: LLamaChatGenerateResponseOptions = { ...generationOptions(loaded, request, extras, maxTokens, signal, onText), ...grammar };
          const response = await chat.generateResponse(history, options);
          return { text: response.response, stopReason: response.metadata.stopReason };
        } finally {
          chat.dispose({ disposeSequence: false });
        }
      },
    };
  }

  private prepareCompletion(loaded: Loaded, request: CompletionRequest): Prepared {
    completionEchoOf(request.extra); // validated before anything runs
    const { model } = loaded;
    assertFitsUnread(loaded, request.prompt.length, 'prompt');
    const tokens: Token[] = model.tokenize(request.prompt, false, 'trimLeadingSpace');
    const bos = beginningTokenPrepended(loaded) ? model.tokens.bos : null;
    const promptTokens = tokens.length + (bos === null ? 0 : 1);
    if (promptTokens === 0) {
      throw new ModelProviderError('The prompt is empty and the model has no BOS token to start from', { code: 'invalid_request', param: 'prompt' });
    }
    const maxTokens = this.budget(loaded, promptTokens, request, 'prompt');
    const format = responseFormatOf(request.extra);
    loaded.grammars.check(format);
    const extras = samplingExtrasOf(request.extra, loaded.vocabularySize);
    return {
      promptTokens,
      tokens: bos === null ? tokens : [bos, ...tokens],
      maxTokens,
      run: async (sequence, signal, onText) => {
        const grammar = await grammarFor(loaded, format);
        const completion = new loaded.lib.LlamaCompletion({ contextSequence: sequence, autoDisposeSequence: false });
        try {
          const options: LlamaCompletionGenerationOptions = {
            ...generationOptions(loaded, request, extras, maxTokens, signal, onText),
            ...grammar,
            // We measured the prompt: never let node-llama-cpp cut it (its default keeps 10% free) or shift the context.
            contextShiftSize: 1,
            disableContextShift: true,
          };
          const response = await completion.generateCompletionWithMeta(tokens, options);
          return { text: response.response, stopReason: response.metadata.stopReason };
        } finally {
          completion.dispose({ disposeSequence: false });
        }
      },
    };
  }

  /**
   * The number of tokens to generate. A sequence holds the prompt, the generated tokens, and one
   * free cell node-llama-cpp keeps; an explicit maxTokens that does not fit is an error (as with
   * OpenAI), the default is capped by the room left.
   */
  private budget(loaded: Loaded, promptTokens: number, request: GenerationParams, param: 'messages' | 'prompt'): number {
    const room = loaded.contextSize - 1 - promptTokens;
    if (room < 1) {
      throw contextLengthExceeded(
        `This model's maximum context length is ${loaded.contextSize} tokens, but the ${param} came to ${promptTokens} tokens ` +
          `(at most ${loaded.contextSize - 2} leave room for a reply). Please shorten the ${param}.`,
        param,
      );
    }
    if (request.maxTokens !== undefined) {
      if (!Number.isInteger(request.maxTokens) || request.maxTokens < 1) {
        throw new ModelProviderError('maxTokens must be a positive integer', { code: 'invalid_request', param: 'max_tokens' });
      }
      if (request.maxTokens > room) {
        throw contextLengthExceeded(
          `This model's maximum context length is ${loaded.contextSize} tokens. However, you requested ` +
            `${promptTokens + request.maxTokens + 1} tokens (${promptTokens} in the ${param}, ${request.maxTokens} in the completion, ` +
            `1 reserved). Please reduce the length of the ${param} or the completion.`,
          'max_tokens',
        );
      }
      return request.maxTokens;
    }
    return Math.min(this.options.maxTokens, room);
  }
}

export function createLlamaCppProvider(options: LlamaCppProviderOptions, context: ProviderContext): LlamaCppProvider {
  return new LlamaCppProvider(options, context);
}

function resolveOptions(options: LlamaCppProviderOptions, context: ProviderContext): ResolvedOptions {
  const builtin = BUILTIN_LLAMA_CPP_MODELS[options.modelPath];
  let modelPath: string;
  if (builtin) {
    modelPath = join(options.builtinDir ?? join(tmpdir(), 'infer-model-providers'), tinyLlamaGgufFileName(builtin));
  } else if (options.modelPath.startsWith('builtin:')) {
    throw new ModelProviderError(
      `Unknown built-in model "${options.modelPath}" (known: ${Object.keys(BUILTIN_LLAMA_CPP_MODELS).join(', ')})`,
      { code: 'invalid_request', param: 'modelPath' },
    );
  } else {
    modelPath = isAbsolute(options.modelPath) ? options.modelPath : resolve(context.baseDir, options.modelPath);
  }
  return {
    modelPath,
    builtin,
    threads: options.threads ?? LLAMA_CPP_DEFAULTS.threads,
    contextSize: options.contextSize,
    sequences: options.sequences ?? LLAMA_CPP_DEFAULTS.sequences,
    maxQueue: options.maxQueue ?? LLAMA_CPP_DEFAULTS.maxQueue,
    promptCache: options.promptCache ?? LLAMA_CPP_DEFAULTS.promptCache,
    batchSize: options.batchSize,
    maxTokens: options.maxTokens ?? LLAMA_CPP_DEFAULTS.maxTokens,
    systemPrompt: options.systemPrompt,
    // Our own template is known not to match a specialized wrapper: skip the (slow) matching.
    chatWrapper: options.chatWrapper ?? (builtin ? 'jinjaTemplate' : 'auto'),
    gpu: options.gpu ?? LLAMA_CPP_DEFAULTS.gpu,
  };
}

function toChatHistory(messages: readonly ChatMessage[], systemPrompt: string | undefined): ChatHistoryItem[] {
  const history: ChatHistoryItem[] = [];
  const hasSystem = messages.some((m) => m.role === 'system' || m.role === 'developer');
  if (systemPrompt !== undefined && !hasSystem) history.push({ type: 'system', text: systemPrompt });
  for (const message of messages) {
    switch (message.role) {
      case 'system':
      case 'developer':
        history.push({ type: 'system', text: message.content });
        break;
      case 'assistant':
        history.push({ type: 'model', response: [message.content] });
        break;
      case 'user':
      case 'tool':
        history.push({ type: 'user', text: message.content });
        break;
    }
  }
  // The reply to generate: an empty model turn at the end.
  history.push({ type: 'model', response: [] });
  return history;
}

type SamplingKey = 'temperature' | 'topP' | 'topK' | 'minP' | 'seed' | 'repeatPenalty';

/** What chat and completion generation share: sampling, budget, abort, stop sequences, streaming. */
function generationOptions(
  loaded: Loaded,
  request: GenerationParams,
  extras: SamplingExtras,
  maxTokens: number,
  signal: AbortSignal,
  onText: ((text: string) => void) | undefined,
): Pick<
  LlamaCompletionGenerationOptions,
  SamplingKey | 'maxTokens' | 'signal' | 'stopOnAbortSignal' | 'trimWhitespaceSuffix' | 'customStopTriggers' | 'onTextChunk' | 'tokenBias'
> {
  const customStopTriggers = stopTriggers(request.stop);
  return {
    ...samplingOptions(request, extras),
    ...(extras.logitBias.length > 0 ? { tokenBias: tokenBiasOf(loaded, extras.logitBias) } : {}),
    maxTokens,
    signal,
    stopOnAbortSignal: false,
    trimWhitespaceSuffix: false,
    ...(customStopTriggers ? { customStopTriggers } : {}),
    ...(onText ? { onTextChunk: onText } : {}),
  };
}

/** The sampling grammar for a response format (an empty object when the request asks for text). */
async function grammarFor(loaded: Loaded, format: ResponseFormat | undefined): Promise<Pick<LlamaCompletionGenerationOptions, 'grammar'>> {
  return format === undefined ? {} : { grammar: await loaded.grammars.get(format) };
}

/** OpenAI's defaults (temperature 1, top_p 1, no top-k, no repeat penalty) rather than node-llama-cpp's, plus the extras. */
function samplingOptions(request: GenerationParams, extras: SamplingExtras): Pick<LlamaCompletionGenerationOptions, SamplingKey> {
  const temperature = request.temperature ?? 1;
  const presencePenalty = request.presencePenalty ?? 0;
  const frequencyPenalty = request.frequencyPenalty ?? 0;
  const penalty = extras.repetitionPenalty;
  return {
    temperature,
    topP: request.topP ?? 1,
    topK: extras.topK,
    minP: extras.minP,
    // Without a seed node-llama-cpp uses the current second: two requests in the same second would match.
    seed: request.seed === undefined ? randomInt(0, 2 ** 31) : toUint32(request.seed),
    repeatPenalty:
      presencePenalty === 0 && frequencyPenalty === 0 && penalty === 1 ? false : { penalty, presencePenalty, frequencyPenalty, lastTokens: 64 },
  };
}

/** OpenAI's logit_bias as node-llama-cpp's TokenBias: the bias is added to the logit; -100 bans the token. */
function tokenBiasOf(loaded: Loaded, logitBias: SamplingExtras['logitBias']): TokenBias {
  const bias = new loaded.lib.TokenBias(loaded.model.tokenizer);
  for (const [token, value] of logitBias) bias.set(token as Token, value <= -100 ? 'never' : { logit: value });
  return bias;
}

/**
 * The longest token's text in the vocabulary (GGUF metadata), in UTF-16 units: a token stands for at
 * most that much input text (SentencePiece's `▁` and byte tokens such as `<0x0A>` are longer than
 * what they stand for), so a text of n characters has at least n / this tokens. 64 when the
 * metadata has no token list.
 */
function longestTokenChars(model: LlamaModel): number {
  const metadata = model.fileInfo.metadata as { tokenizer?: { ggml?: { tokens?: readonly unknown[] } } };
  const tokens = metadata.tokenizer?.ggml?.tokens;
  if (!Array.isArray(tokens) || tokens.length === 0) return 64;
  let longest = 1;
  for (const token of tokens) if (typeof token === 'string' && token.length > longest) longest = token.length;
  return longest;
}

/**
 * Refuses a text that cannot fit in the context without tokenizing it (see Loaded.maxPromptChars;
 * the factor 2 there leaves room for tokenizers that normalise text, e.g. merge spaces).
 */
function assertFitsUnread(loaded: Loaded, chars: number, param: string): void {
  if (chars <= loaded.maxPromptChars) return;
  throw contextLengthExceeded(
    `This model's maximum context length is ${loaded.contextSize} tokens, and the ${param} (${chars} characters) is far longer than that. Please shorten the ${param}.`,
    param,
  );
}

/** The vocabulary size the GGUF metadata states (its token list, or `<arch>.vocab_size`). */
function vocabularySizeOf(model: LlamaModel): number | undefined {
  const metadata = model.fileInfo.metadata as { tokenizer?: { ggml?: { tokens?: readonly unknown[] } } };
  const fromTokens = metadata.tokenizer?.ggml?.tokens?.length;
  if (typeof fromTokens === 'number' && fromTokens > 0) return fromTokens;
  const fromArchitecture = (model.fileInfo.architectureMetadata as { vocab_size?: unknown } | undefined)?.vocab_size;
  return typeof fromArchitecture === 'number' && fromArchitecture > 0 ? fromArchitecture : undefined;
}

function toUint32(value: number): number {
  const integer = Math.trunc(value);
  return ((integer % 2 ** 32) + 2 ** 32) % 2 ** 32;
}

function stopTriggers(stop: readonly string[] | undefined): string[] | undefined {
  const triggers = (stop ?? []).filter((s) => s.length > 0);
  return triggers.length > 0 ? triggers : undefined;
}

/** Whether LlamaCompletion puts a BOS token in front of the prompt (mirrors node-llama-cpp's rule). */
function beginningTokenPrepended(loaded: Loaded): boolean {
  const { model, lib } = loaded;
  switch (model.vocabularyType) {
    case lib.LlamaVocabularyType.rwkv:
    case lib.LlamaVocabularyType.ugm:
      return false;
    case lib.LlamaVocabularyType.wpm:
      return model.tokens.bos != null;
    default:
      return model.tokens.shouldPrependBosToken && model.tokens.bos != null;
  }
}

function toFinishReason(stopReason: StopReason): FinishReason {
  switch (stopReason) {
    case 'maxTokens':
      return 'length';
    case 'functionCalls':
      return 'tool_calls';
    case 'eogToken':
    case 'stopGenerationTrigger':
    case 'customStopTrigger':
    case 'abort':
      return 'stop';
  }
}

function contextLengthExceeded(message: string, param: string): ModelProviderError {
  return new ModelProviderError(message, { code: 'context_length_exceeded', isRetryable: false, param });
}

/** The vector scaled to length 1 (a zero vector stays zero). */
function unitLength(vector: readonly number[]): number[] {
  let sum = 0;
  for (const x of vector) sum += x * x;
  const norm = Math.sqrt(sum);
  return norm === 0 ? [...vector] : vector.map((x) => x / norm);
}

function closedError(): ModelProviderError {
  return new ModelProviderError('The llama-cpp provider is closed', { code: 'upstream_unavailable', isRetryable: true });
}

function errorMessage(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

/** One signal that aborts when any of `signals` does; `dispose` removes the listeners (no leak on long-lived signals). */
function linkSignals(...signals: readonly (AbortSignal | undefined)[]): { readonly signal: AbortSignal; dispose(): void } {
  const controller = new AbortController();
  const cleanups: (() => void)[] = [];
  for (const source of signals) {
    if (!source) continue;
    if (source.aborted) {
      controller.abort(source.reason);
      break;
    }
    const onAbort = (): void => controller.abort(source.reason);
    source.addEventListener('abort', onAbort, { once: true });
    cleanups.push(() => source.removeEventListener('abort', onAbort));
  }
  return { signal: controller.signal, dispose: () => cleanups.forEach((cleanup) => cleanup()) };
}

/** Settles with `promise`, or rejects with `toError()` as soon as `signal` aborts (the promise keeps running). */
function raceAbort<T>(promise: Promise<T>, signal: AbortSignal, toError: () => unknown): Promise<T> {
  if (signal.aborted) return Promise.reject(toError());
  return new Promise<T>((resolvePromise, reject) => {
    const onAbort = (): void => reject(toError());
    signal.addEventListener('abort', onAbort, { once: true });
    promise.then(
      (value) => {
        signal.removeEventListener('abort', onAbort);
        resolvePromise(value);
      },
      (error: unknown) => {
        signal.removeEventListener('abort', onAbort);
        reject(error);
      },
    );
  });
}
