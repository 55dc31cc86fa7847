/**
 * A provider for any OpenAI-compatible upstream (vLLM, Ollama, llama.cpp server, TGI, OpenAI, a
 * model node of this platform): one keep-alive undici Pool per instance; non-stream calls go through
 * `pool.dispatch` with a buffering handler (buffered-call.ts), streams through undici's `request`
 * (undici-parts.ts: the few parts of undici used, without its index).
 *
 * Usage: when the upstream reports usage (non-stream bodies, and the last stream chunk since we always
 * ask for `stream_options.include_usage`), it is passed on as is. When it does not, usage is
 * estimated: completion tokens = the number of content chunks of a stream (servers send one token
 * per chunk) or ceil(characters / 4) of a non-stream reply; prompt tokens = ceil(characters / 4) of
 * the prompt. Estimates are never negative and always integers.
 *
 * Tool calling (tool-calls.ts): `tools`, `tool_choice`, `parallel_tool_calls` and tool-call history go
 * out in OpenAI form; `message.tool_calls` and streamed `delta.tool_calls` come back as `toolCalls` and
 * `tool_call` parts. Requests without tools build the same body as before.
 *
 * Log probabilities (logprobs.ts): `logprobs` goes out as `logprobs: true, top_logprobs: n` (chat) or
 * `logprobs: n` (legacy completions); `choices[0].logprobs` comes back as `logprobs` on the result, or
 * on the delta of each stream chunk (a chunk with logprobs and no text yields a delta with text '').
 * An upstream that ignores the request answers `logprobs: null`: no logprobs, not an error. Requests
 * without `logprobs` never look at `choices[0].logprobs` (nor get any).
 *
 * Timeouts (`timeoutMs`, `idleTimeoutMs`) are undici's headers/body timers, which have a resolution
 * of about one second: fine for their 60 s defaults, not for sub-second deadlines (use the signal).
 */
import type { Readable } from 'node:stream';
import type { Dispatcher } from 'undici';
import { ModelProviderError, abortedError } from '../../contract/errors.js';
import { MODEL_PROVIDER_SPEC_VERSION } from '../../contract/model-provider.js';
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
  TokenUsage,
  ToolCallPart,
} from '../../contract/model-provider.js';
import { silentLogger } from '../../registry/provider-definition.js';
import type { ProviderLogger } from '../../registry/provider-definition.js';
import { OPENAI_COMPATIBLE_KIND, resolveOpenAICompatibleOptions } from './openai-compatible.options.js';
import type { OpenAICompatibleProviderOptions, ResolvedOpenAICompatibleOptions } from './openai-compatible.options.js';
import { bufferedPost, type BufferedResponse } from './buffered-call.js';
import { SseParser } from './sse-parser.js';
import { Client, Pool, request } from './undici-parts.js';
import { malformedError, mapHttpError, mapTransportError, parseJsonObject } from './upstream-errors.js';
import { parseToolCalls, ToolCallStream, wireMessages, wireToolChoice, wireTools } from './tool-calls.js';
import { embeddingBody, parseEmbeddings } from './embeddings.js';
import { parseLogprobs } from './logprobs.js';

type Route = 'chat' | 'completion';
type Path = Route | 'embeddings';

interface StreamState {
  done: boolean;
  finishReason: FinishReason | undefined;
  usage: TokenUsage | undefined;
  contentChunks: number;
  /** Created at the first tool call piece. */
  toolCalls: ToolCallStream | undefined;
  /** Tool call parts of the last event, for the reading loop to yield. */
  toolParts: ToolCallPart[] | undefined;
  /** The requested number of alternatives; undefined: the request asked for no logprobs. */
  readonly topLogprobs: number | undefined;
  /** Logprobs of the last event, for the reading loop to put on its delta. */
  logprobs: TokenLogprob[] | undefined;
  /** The refusal text of the last event, for the reading loop to yield. */
  refusal: string | undefined;
}
type JsonObject = Record<string, unknown>;

/** Longest error body read from an upstream (the rest is discarded). */
const MAX_ERROR_BODY = 64 * 1024;
/** How long close() waits for in-flight calls before destroying the sockets. */
const CLOSE_GRACE_MS = 5_000;

export interface OpenAICompatibleProviderContext {
  readonly env?: Readonly<Record<string, string | undefined>>;
  readonly logger?: ProviderLogger;
}

export class OpenAICompatibleProvider implements ModelProvider {
  readonly specificationVersion = MODEL_PROVIDER_SPEC_VERSION;
  readonly kind = OPENAI_COMPATIBLE_KIND;
  readonly label: string;
  readonly capabilities: ProviderCapabilities;

  private readonly options: ResolvedOpenAICompatibleOptions;
  private readonly logger: ProviderLogger;
  private readonly pool: Pool;
  /** A separate single connection for health probes, so a saturated pool does not look unhealthy. */
  private readonly healthClient: Client;
  private readonly jsonHeaders: Record<string, string>;
  private readonly streamHeaders: Record<string, string>;
  private readonly healthHeaders: Record<string, string>;
  private readonly chatPath: string;
  private readonly completionsPath: string;
  private readonly embeddingsPath: string;
  private healthCache: { readonly at: number; readonly value: ProviderHealth } | undefined;
  /** The error of an answer past maxResponseBytes. */
  private readonly tooLarge = (): ModelProviderError =>
    new ModelProviderError(`${this.label}: the upstream's answer is larger than maxResponseBytes (${this.options.maxResponseBytes} bytes)`, {
      code: 'upstream_error',
      isRetryable: false,
    });
  private healthPending: Promise<ProviderHealth> | undefined;
  private closed: Promise<void> | undefined;

  constructor(options: OpenAICompatibleProviderOptions, context: OpenAICompatibleProviderContext = {}) {
    this.options = resolveOpenAICompatibleOptions(options, context.env ?? {});
    this.logger = context.logger ?? silentLogger;
    const o = this.options;
    this.label = `${OPENAI_COMPATIBLE_KIND}(${o.baseUrl}, ${o.model})`;
    this.capabilities = {
      chat: true,
      completion: o.supportsCompletions,
      streaming: true,
      embeddings: o.supportsEmbeddings,
      tools: o.supportsTools,
      logprobs: o.supportsLogprobs,
    };
    this.pool = new Pool(o.origin, {
      connections: o.connections,
      pipelining: 1,
      connectTimeout: o.connectTimeoutMs,
      headersTimeout: o.timeoutMs,
      bodyTimeout: o.idleTimeoutMs,
      // undici's default idle keep-alive (4 s, or the server's Keep-Alive hint) stays below the 5 s
      // of uvicorn/vLLM and Node servers, so we do not reuse a socket the server is closing.
    });
    this.healthClient = new Client(o.origin, {
      pipelining: 1,
      connectTimeout: Math.min(o.connectTimeoutMs, o.healthTimeoutMs),
      headersTimeout: o.healthTimeoutMs,
      bodyTimeout: o.healthTimeoutMs,
    });
    const common: Record<string, string> = { ...o.headers };
    if (o.apiKey) common['authorization'] = `Bearer ${o.apiKey}`;
    this.jsonHeaders = { ...common, 'content-type': 'application/json', accept: 'application/json' };
    this.streamHeaders = { ...common, 'content-type': 'application/json', accept: 'text/event-stream' };
    this.healthHeaders = { ...common, accept: 'application/json' };
    this.chatPath = `${o.basePath}/chat/completions`;
    this.completionsPath = `${o.basePath}/completions`;
    this.embeddingsPath = `${o.basePath}/embeddings`;
  }

  async chat(request: ChatRequest, options?: CallOptions): Promise<GenerationResult> {
    return this.generate('chat', this.chatBody(request, false), promptLength(request), request.logprobs, options?.signal);
  }

  async complete(request: CompletionRequest, options?: CallOptions): Promise<GenerationResult> {
    this.assertCompletions();
    return this.generate('completion', this.completionBody(request, false), request.prompt.length, request.logprobs, options?.signal);
  }

  streamChat(request: ChatRequest, options?: CallOptions): AsyncIterable<StreamPart> {
    return this.stream('chat', () => this.chatBody(request, true), promptLength(request), request.logprobs, options?.signal);
  }

  streamComplete(request: CompletionRequest, options?: CallOptions): AsyncIterable<StreamPart> {
    return this.stream(
      'completion',
      () => {
        this.assertCompletions();
        return this.completionBody(request, true);
      },
      request.prompt.length,
      request.logprobs,
      options?.signal,
    );
  }

  async embed(request: EmbeddingRequest, options?: CallOptions): Promise<EmbeddingResult> {
    if (!this.options.supportsEmbeddings) {
      throw new ModelProviderError(`${this.label}: this upstream does not serve embeddings (supportsEmbeddings: false)`, {
        code: 'not_supported',
        isRetryable: false,
        publicMessage: 'This model does not serve embeddings.',
      });
    }
    const text = await this.post('embeddings', embeddingBody(request, this.options.model), options?.signal);
    return parseEmbeddings(parseJsonObject(text, this.label, 'the body'), request.input, this.label);
  }

  async health(): Promise<ProviderHealth> {
    if (this.closed) return { healthy: false, detail: 'closed' };
    const cached = this.healthCache;
    if (cached && Date.now() - cached.at < this.options.healthCacheMs) return cached.value;
    this.healthPending ??= this.probe().then((value) => {
      const previous = this.healthCache?.value;
      if (previous && previous.healthy !== value.healthy) {
        if (value.healthy) this.logger.info({ provider: this.label }, 'upstream healthy again');
        else this.logger.warn({ provider: this.label, detail: value.detail }, 'upstream unhealthy');
      }
      this.healthCache = { at: Date.now(), value };
      this.healthPending = undefined;
      return value;
    });
    return this.healthPending;
  }

  async close(): Promise<void> {
    this.closed ??= (async () => {
      const graceful = Promise.all([this.pool.close(), this.healthClient.close()]).then(() => true);
      let timer: NodeJS.Timeout | undefined;
      const timeout = new Promise<false>((resolve) => {
        timer = setTimeout(() => resolve(false), CLOSE_GRACE_MS);
        timer.unref();
      });
      const done = await Promise.race([graceful, timeout]);
      clearTimeout(timer);
      if (!done) await Promise.all([this.pool.destroy(), this.healthClient.destroy()]);
    })();
    return this.closed;
  }

  // ---------------------------------------------------------------------------------------------

  private assertCompletions(): void {
    if (!this.options.supportsCompletions) {
      throw new ModelProviderError(`${this.label}: this upstream does not serve completions (supportsCompletions: false)`, {
        code: 'not_supported',
        isRetryable: false,
        publicMessage: 'This model does not serve text completions: use /v1/chat/completions.',
      });
    }
  }

  private assertOpen(): void {
    if (this.closed) {
      throw new ModelProviderError(`${this.label}: the provider is closed`, { code: 'upstream_unavailable' });
    }
  }

  /**
   * The upstream body: `extra` first, then the normalized fields (which win), `model` replaced.
   * `maxTokensField`: where the length bound goes (chat: the deployment's `maxTokensField`).
   */
  private baseBody(params: GenerationParams, stream: boolean, maxTokensField = 'max_tokens'): JsonObject {
    const body: JsonObject = { ...params.extra, model: this.options.model, stream };
    if (params.maxTokens !== undefined) body[maxTokensField] = params.maxTokens;
    if (params.temperature !== undefined) body['temperature'] = params.temperature;
    if (params.topP !== undefined) body['top_p'] = params.topP;
    if (params.seed !== undefined) body['seed'] = params.seed;
    if (params.stop !== undefined && params.stop.length > 0) body['stop'] = params.stop;
    if (params.presencePenalty !== undefined) body['presence_penalty'] = params.presencePenalty;
    if (params.frequencyPenalty !== undefined) body['frequency_penalty'] = params.frequencyPenalty;
    if (stream) {
      const extraOptions = params.extra?.['stream_options'];
      body['stream_options'] = {
        ...(extraOptions !== null && typeof extraOptions === 'object' ? (extraOptions as JsonObject) : {}),
        include_usage: true,
      };
    } else {
      delete body['stream_options'];
    }
    // The route's own form is added by chatBody/completionBody; a stale one from `extra` never goes out.
    const extra = params.extra;
    if (extra !== undefined && (extra['logprobs'] !== undefined || extra['top_logprobs'] !== undefined)) {
      delete body['logprobs'];
      delete body['top_logprobs'];
    }
    return body;
  }

  private chatBody(request: ChatRequest, stream: boolean): string {
    const body = this.baseBody(request, stream, this.options.maxTokensField);
    body['messages'] = wireMessages(request.messages);
    if (request.tools !== undefined && request.tools.length > 0) body['tools'] = wireTools(request.tools);
    if (request.toolChoice !== undefined) body['tool_choice'] = wireToolChoice(request.toolChoice);
    if (request.parallelToolCalls !== undefined) body['parallel_tool_calls'] = request.parallelToolCalls;
    if (request.logprobs !== undefined) {
      body['logprobs'] = true;
      body['top_logprobs'] = request.logprobs;
    }
    return JSON.stringify(body);
  }

  private completionBody(request: CompletionRequest, stream: boolean): string {
    const body = this.baseBody(request, stream);
    body['prompt'] = request.prompt;
    // The legacy form: the number of alternatives.
    if (request.logprobs !== undefined) body['logprobs'] = request.logprobs;
    return JSON.stringify(body);
  }

  /** Sends a streaming POST; resolves with the response (status < 400) or throws the mapped error. */
  private async send(route: Route, body: string, signal: AbortSignal | undefined): Promise<Dispatcher.ResponseData> {
    if (signal?.aborted) throw abortedError(signal.reason);
    this.assertOpen();
    let response: Dispatcher.ResponseData;
    try {
      response = await request(this.pool, {
        method: 'POST',
        path: route === 'chat' ? this.chatPath : this.completionsPath,
        headers: this.streamHeaders,
        body,
        signal: signal ?? null,
      });
    } catch (error) {
      throw mapTransportError(error, this.label, signal);
    }
    if (response.statusCode >= 400) {
      let text = '';
      try {
        text = await readLimited(response.body, MAX_ERROR_BODY);
      } catch (error) {
        if (signal?.aborted) throw abortedError(error);
      }
      throw mapHttpError(response.statusCode, text, this.label, response.headers['retry-after']);
    }
    return response;
  }

  /**
   * A non-stream call: the whole body at once, through undici's dispatch (see buffered-call.ts).
   * `topLogprobs`: the request's `logprobs` (undefined: none asked for).
   */
  private generate(
    route: Route,
    body: string,
    promptChars: number,
    topLogprobs: number | undefined,
    signal: AbortSignal | undefined,
  ): Promise<GenerationResult> {
    return this.post(route, body, signal).then((text) => this.interpretResult(route, text, promptChars, topLogprobs));
  }

  /** POSTs a JSON body and resolves with the response text (status < 400), or throws the mapped error. */
  private async post(path: Path, body: string, signal: AbortSignal | undefined): Promise<string> {
    if (signal?.aborted) throw abortedError(signal.reason);
    this.assertOpen();
    let response: BufferedResponse;
    try {
      response = await bufferedPost(this.pool, {
        path: path === 'chat' ? this.chatPath : path === 'completion' ? this.completionsPath : this.embeddingsPath,
        headers: this.jsonHeaders,
        body,
        signal,
        errorBodyLimit: MAX_ERROR_BODY,
        bodyLimit: this.options.maxResponseBytes,
        tooLarge: this.tooLarge,
      });
    } catch (error) {
      throw mapTransportError(error, this.label, signal);
    }
    if (response.statusCode >= 400) throw mapHttpError(response.statusCode, response.text, this.label, response.retryAfter);
    if (signal?.aborted) throw abortedError(signal.reason);
    return response.text;
  }

  /** Reads a non-stream JSON body from a `request` response (a stream request answered with JSON). */
  private async readResult(
    route: Route,
    response: Dispatcher.ResponseData,
    promptChars: number,
    topLogprobs: number | undefined,
    signal: AbortSignal | undefined,
  ): Promise<GenerationResult> {
    let text: string;
    try {
      text = await readLimited(response.body, this.options.maxResponseBytes, this.tooLarge);
    } catch (error) {
      throw mapTransportError(error, this.label, signal);
    }
    if (signal?.aborted) throw abortedError(signal.reason);
    return this.interpretResult(route, text, promptChars, topLogprobs);
  }

  /** Interprets a non-stream JSON body; its logprobs are read only when `topLogprobs` is set. */
  private interpretResult(route: Route, text: string, promptChars: number, topLogprobs: number | undefined): GenerationResult {
    const root = parseJsonObject(text, this.label, 'the body');
    const choice = firstChoice(root);
    if (!choice) {
      if (root['error'] !== undefined && root['error'] !== null) throw mapHttpError(502, text, this.label);
      throw malformedError(this.label, 'no choices');
    }
    const result = this.interpretChoice(route, root, choice, promptChars);
    if (topLogprobs === undefined) return result;
    const raw = choice['logprobs'];
    if (raw === null || raw === undefined) return result;
    const logprobs = parseLogprobs(route === 'chat', raw, topLogprobs, this.label, 'choices[0].logprobs');
    return logprobs === undefined ? result : { ...result, logprobs };
  }

  /** The text, finish reason, usage and tool calls of a non-stream answer. */
  private interpretChoice(route: Route, root: JsonObject, choice: JsonObject, promptChars: number): GenerationResult {
    const message = route === 'chat' ? (choice['message'] as JsonObject | undefined) : undefined;
    const content = route === 'chat' ? message?.['content'] : choice['text'];
    if (content !== undefined && content !== null && typeof content !== 'string') {
      throw malformedError(this.label, route === 'chat' ? 'choices[0].message.content is not a string' : 'choices[0].text is not a string');
    }
    const output = content ?? '';
    const finishReason = mapFinishReason(choice['finish_reason']) ?? 'stop';
    const toolCalls = route === 'chat' ? parseToolCalls(message, this.label) : undefined;
    const refusal = message?.['refusal'];
    if (toolCalls === undefined && (refusal === undefined || refusal === null)) {
      return {
        text: output,
        finishReason,
        usage: mapUsage(root['usage']) ?? { promptTokens: estimateTokens(promptChars), completionTokens: estimateTokens(output.length) },
      };
    }
    if (refusal !== undefined && refusal !== null && typeof refusal !== 'string') throw malformedError(this.label, 'choices[0].message.refusal is not a string');
    let chars = output.length + (typeof refusal === 'string' ? refusal.length : 0);
    for (const call of toolCalls ?? []) chars += call.name.length + call.arguments.length;
    return {
      text: output,
      finishReason,
      usage: mapUsage(root['usage']) ?? { promptTokens: estimateTokens(promptChars), completionTokens: estimateTokens(chars) },
      ...(toolCalls !== undefined && { toolCalls }),
      ...(typeof refusal === 'string' && refusal.length > 0 && { refusal }),
    };
  }

  private stream(
    route: Route,
    buildBody: () => string,
    promptChars: number,
    topLogprobs: number | undefined,
    signal: AbortSignal | undefined,
  ): AsyncIterable<StreamPart> {
    // Nothing is sent before the consumer asks for the first part.
    return this.streamParts(route, buildBody, promptChars, topLogprobs, signal);
  }

  private async *streamParts(
    route: Route,
    buildBody: () => string,
    promptChars: number,
    topLogprobs: number | undefined,
    signal: AbortSignal | undefined,
  ): AsyncGenerator<StreamPart, void, undefined> {
    const response = await this.send(route, buildBody(), signal);
    const contentType = response.headers['content-type'];
    if (typeof contentType === 'string' && contentType.startsWith('application/json')) {
      // An upstream that ignores `stream: true` and answers one JSON body: replay it as a stream.
      const result = await this.readResult(route, response, promptChars, topLogprobs, signal);
      if (result.logprobs !== undefined) yield { type: 'delta', text: result.text, logprobs: result.logprobs };
      else if (result.text.length > 0) yield { type: 'delta', text: result.text };
      if (result.refusal !== undefined) yield { type: 'refusal', text: result.refusal };
      if (result.toolCalls) {
        for (let index = 0; index < result.toolCalls.length; index++) {
          const call = result.toolCalls[index] as (typeof result.toolCalls)[number];
          yield { type: 'tool_call', index, id: call.id, name: call.name, arguments: call.arguments };
        }
      }
      if (signal?.aborted) throw abortedError(signal.reason);
      yield { type: 'finish', finishReason: result.finishReason, usage: result.usage };
      return;
    }
    const body = response.body;
    const parser = new SseParser(this.options.maxResponseBytes);
    const state: StreamState = {
      done: false,
      finishReason: undefined,
      usage: undefined,
      contentChunks: 0,
      toolCalls: undefined,
      toolParts: undefined,
      topLogprobs,
      logprobs: undefined,
      refusal: undefined,
    };
    try {
      // destroyOnReturn: false — leaving the loop at [DONE] must not destroy the body: Node would
      // build an AbortError (a stack trace, ~4% of the CPU of a stream) for a response that is
      // complete; the finally block below dumps or destroys it as the case requires.
      const chunks = (body as unknown as Readable).iterator({ destroyOnReturn: false }) as AsyncIterable<Buffer>;
      reading: for await (const chunk of chunks) {
        if (signal?.aborted) throw abortedError(signal.reason);
        for (const event of parser.push(chunk)) {
          const text = this.streamEvent(route, event.data, state);
          if (text !== undefined) {
            yield state.logprobs === undefined ? { type: 'delta', text } : logprobsDelta(text, state);
            // The consumer may have aborted while we were suspended at the yield.
            if (signal?.aborted) throw abortedError(signal.reason);
          }
          if (state.refusal !== undefined) {
            const refusal = state.refusal;
            state.refusal = undefined;
            yield { type: 'refusal', text: refusal };
            if (signal?.aborted) throw abortedError(signal.reason);
          }
          if (state.toolParts !== undefined) {
            const parts = state.toolParts;
            state.toolParts = undefined;
            for (const part of parts) {
              yield part;
              if (signal?.aborted) throw abortedError(signal.reason);
            }
          }
          if (state.done) break reading;
        }
      }
      if (!state.done) {
        for (const event of parser.end()) {
          const text = this.streamEvent(route, event.data, state);
          if (text !== undefined) yield state.logprobs === undefined ? { type: 'delta', text } : logprobsDelta(text, state);
          if (state.refusal !== undefined) {
            yield { type: 'refusal', text: state.refusal };
            state.refusal = undefined;
          }
          if (state.toolParts !== undefined) {
            yield* state.toolParts;
            state.toolParts = undefined;
          }
          if (state.done) break;
        }
      }
      if (signal?.aborted) throw abortedError(signal.reason);
      if (!state.done && state.finishReason === undefined) {
        throw new ModelProviderError(`${this.label}: the upstream stream ended before it finished`, {
          code: 'upstream_error',
        });
      }
      yield {
        type: 'finish',
        finishReason: state.finishReason ?? 'stop',
        usage: state.usage ?? { promptTokens: estimateTokens(promptChars), completionTokens: state.contentChunks },
      };
    } catch (error) {
      throw mapTransportError(error, this.label, signal);
    } finally {
      if (!body.readableEnded && !body.destroyed) {
        if (state.done && !signal?.aborted) {
          // Normal end: read the little that is left (a trailing CRLF) so the socket is reused.
          body.dump({ limit: 64 * 1024 }).catch(() => undefined);
        } else {
          // Early return, abort or error: close the connection so the upstream stops generating.
          // (undici reports the destroy as an 'error' event: nobody listens any more.)
          body.on('error', () => undefined).destroy();
        }
      }
    }
  }

  /**
   * Interprets one SSE data payload; returns the delta text it carries, if any (tool call pieces go
   * to `state.toolParts`, logprobs to `state.logprobs`; with logprobs the text may be '').
   */
  private streamEvent(route: Route, data: string, state: StreamState): string | undefined {
    if (data === '[DONE]') {
      state.done = true;
      return undefined;
    }
    const root = parseJsonObject(data, this.label, 'a stream event');
    // Some servers report a failure in the middle of a stream as a data event with an error object.
    if (root['error'] !== undefined && root['error'] !== null && root['choices'] === undefined) {
      throw mapHttpError(502, data, this.label);
    }
    const usage = mapUsage(root['usage']);
    if (usage) state.usage = usage;
    const choice = firstChoice(root);
    if (!choice) return undefined;
    const reason = mapFinishReason(choice['finish_reason']);
    if (reason) state.finishReason = reason;
    const delta = route === 'chat' ? (choice['delta'] as JsonObject | undefined) : undefined;
    const text = route === 'chat' ? delta?.['content'] : choice['text'];
    if (delta !== undefined && (delta['tool_calls'] != null || delta['function_call'] != null)) this.streamToolCalls(delta, state);
    const refusal = delta?.['refusal'];
    if (typeof refusal === 'string' && refusal.length > 0) {
      state.refusal = refusal;
      state.contentChunks += 1;
    }
    if (state.topLogprobs !== undefined && choice['logprobs'] != null) return this.streamLogprobs(route, choice['logprobs'], text, state.topLogprobs, state);
    if (typeof text !== 'string' || text.length === 0) return undefined;
    state.contentChunks += 1;
    return text;
  }

  /** A chunk with logprobs: a delta even without text, counting its tokens exactly. */
  private streamLogprobs(route: Route, raw: unknown, text: unknown, top: number, state: StreamState): string | undefined {
    const logprobs = parseLogprobs(route === 'chat', raw, top, this.label, "a stream event's choices[0].logprobs");
    const content = typeof text === 'string' ? text : '';
    if (logprobs === undefined) {
      if (content.length === 0) return undefined;
      state.contentChunks += 1;
      return content;
    }
    state.contentChunks += logprobs.length;
    state.logprobs = logprobs;
    return content;
  }

  private streamToolCalls(delta: JsonObject, state: StreamState): void {
    // The legacy `function_call` delta is one call.
    const raw = delta['tool_calls'] ?? [{ index: 0, function: delta['function_call'] }];
    const parts = (state.toolCalls ??= new ToolCallStream()).parts(raw, this.label);
    if (parts.length === 0) return;
    state.contentChunks += parts.length;
    state.toolParts = parts;
  }

  private async probe(): Promise<ProviderHealth> {
    const signal = AbortSignal.timeout(this.options.healthTimeoutMs);
    try {
      const { statusCode, body } = await request(this.healthClient, {
        method: 'GET',
        path: `${this.options.basePath}/models`,
        headers: this.healthHeaders,
        signal,
      });
      await body.dump().catch(() => undefined);
      if (statusCode >= 200 && statusCode < 300) return { healthy: true };
      return { healthy: false, detail: `GET /models answered ${statusCode}` };
    } catch (error) {
      const code = (error as { code?: unknown }).code;
      if (signal.aborted) return { healthy: false, detail: `GET /models timed out after ${this.options.healthTimeoutMs} ms` };
      const message = error instanceof Error ? error.message : String(error);
      return { healthy: false, detail: `GET /models failed: ${typeof code === 'string' ? `${code}: ` : ''}${message}` };
    }
  }
}

/** Creates an `openai-compatible` provider (the registry calls this after validating the options). */
export function createOpenAICompatibleProvider(
  options: OpenAICompatibleProviderOptions,
  context: OpenAICompatibleProviderContext = {},
): OpenAICompatibleProvider {
  return new OpenAICompatibleProvider(options, context);
}

/**
 * Reads a body up to `limit` bytes. Past it the connection is closed and the text is cut there, or,
 * with `tooLarge`, that error is thrown.
 */
async function readLimited(body: Dispatcher.ResponseData['body'], limit: number, tooLarge?: () => Error): Promise<string> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of body as AsyncIterable<Buffer>) {
    chunks.push(chunk);
    size += chunk.length;
    if (tooLarge && size > limit) {
      body.destroy();
      throw tooLarge();
    }
    if (!tooLarge && size >= limit) {
      body.destroy();
      break;
    }
  }
  return Buffer.concat(chunks).toString('utf8').slice(0, limit);
}

/** The delta of a chunk with logprobs (taken from `state`). */
function logprobsDelta(text: string, state: StreamState): StreamPart {
  const logprobs = state.logprobs;
  state.logprobs = undefined;
  return logprobs === undefined ? { type: 'delta', text } : { type: 'delta', text, logprobs };
}

function promptLength(request: ChatRequest): number {
  let chars = 0;
  for (const message of request.messages) chars += message.content.length;
  return chars;
}

function estimateTokens(chars: number): number {
  return Math.ceil(chars / 4);
}

function firstChoice(root: JsonObject): JsonObject | undefined {
  const choices = root['choices'];
  if (!Array.isArray(choices) || choices.length === 0) return undefined;
  const first: unknown = choices[0];
  return first !== null && typeof first === 'object' ? (first as JsonObject) : undefined;
}

const FINISH_REASONS: Readonly<Record<string, FinishReason>> = {
  stop: 'stop',
  eos: 'stop',
  eos_token: 'stop',
  stop_sequence: 'stop',
  end_turn: 'stop',
  length: 'length',
  max_tokens: 'length',
  content_filter: 'content_filter',
  tool_calls: 'tool_calls',
  function_call: 'tool_calls',
};

function mapFinishReason(value: unknown): FinishReason | undefined {
  if (typeof value !== 'string' || value.length === 0) return undefined;
  return FINISH_REASONS[value] ?? 'stop';
}

function mapUsage(value: unknown): TokenUsage | undefined {
  if (value === null || typeof value !== 'object') return undefined;
  const usage = value as JsonObject;
  const prompt = usage['prompt_tokens'];
  const completion = usage['completion_tokens'];
  if (typeof prompt !== 'number' && typeof completion !== 'number') return undefined;
  const count = (n: unknown): number => (typeof n === 'number' && Number.isFinite(n) && n > 0 ? Math.round(n) : 0);
  // vLLM (with prefix caching) and OpenAI report the prompt tokens served from their cache.
  const details = usage['prompt_tokens_details'];
  const cached = details !== null && typeof details === 'object' ? (details as JsonObject)['cached_tokens'] : undefined;
  return typeof cached === 'number'
    ? { promptTokens: count(prompt), completionTokens: count(completion), cachedPromptTokens: Math.min(count(cached), count(prompt)) }
    : { promptTokens: count(prompt), completionTokens: count(completion) };
}
