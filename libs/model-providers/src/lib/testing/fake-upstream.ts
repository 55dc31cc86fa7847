/**
 * A fake OpenAI-compatible upstream on plain `node:http`: fast (it is the upstream of the benchmark),
 * deterministic, and instrumented for tests (request log, abort counters, failure injection).
 *
 * Routes: `POST /v1/chat/completions`, `POST /v1/completions` (stream and not), `GET /v1/models`, and
 * `GET /__fake/stats` (the counters as JSON, not recorded: how a process started with the CLI, e.g. by
 * the benchmark, reports the upstream calls it received).
 *
 * Replies are derived from the prompt: `<hash> tok1 tok2 ... tok{n-1}` where `<hash>` is 8 hex
 * digits of an FNV-1a hash of the prompt text (chat: the message contents joined by "\n"), so
 * different prompts get different answers and the same prompt always gets the same one, whatever
 * the temperature. One "token" is one word: the hash, then ` tokN`. Streams send one token per
 * content chunk.
 *
 * Tool calling: a chat request with a non-empty `tools` array, `tool_choice` other than "none", and
 * a last message that is not a tool result, is answered with tool calls instead of text
 * (`finish_reason: "tool_calls"`): the named function of `tool_choice`, else the first tool, and
 * also the second one when there are several and `parallel_tool_calls` is not false. Arguments are
 * a JSON object giving every property of the tool's `parameters` (or `input` when it lists none)
 * the prompt's hash; ids are `call_<hash>_<n>`. Streams send each call's id and name first, then
 * its arguments in three pieces. Once the last message is a tool result, the reply is text again.
 *
 * Log probabilities: a chat request with `logprobs: true` (n = `top_logprobs`, default 0) or a
 * completions request with a numeric `logprobs` (n = it; n is clamped to 0..20) gets them for every
 * content token, non-stream and stream (each chunk: its token's entry), in OpenAI's form: chat
 * `logprobs.content[]` = `{token, logprob, bytes, top_logprobs}`, completions the legacy `{tokens,
 * token_logprobs, top_logprobs: [{token: logprob}], text_offset}` (offsets into the reply text, from
 * 0). Token i of the reply to a prompt whose hash is h (as a number) has logprob -((h + i) % 7 + 1) / 10;
 * its n alternatives are the token itself, then `alt1`, `alt2`, ... each 3 lower than the one before
 * (so the probabilities sum to less than 1). `bytes` are the token's UTF-8 bytes. fakeTokenLogprob and
 * fakeReplyLogprobs give the same values in the contract's form. Tool-call replies carry none;
 * requests without logprobs cost nothing more.
 *
 * Refusals: a chat request whose last message contains `[refuse]` is refused as OpenAI's models
 * refuse: `message.refusal` is FAKE_REFUSAL and `content` null (finish `stop`); a stream sends the
 * refusal as `delta.refusal` in three pieces. Tools and logprobs are then ignored.
 *
 * Embeddings (`POST /v1/embeddings`): one unit-length vector per input, derived from the text (see
 * fakeEmbedding), of `dimensions` values when the request sets it, else `embeddingDimensions`;
 * `encoding_format: "base64"` is honoured. Counted as an inference call; failures are not injected.
 */
import { EventEmitter, once } from 'node:events';
import { createServer } from 'node:http';
import type { IncomingHttpHeaders, IncomingMessage, Server, ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import type { TokenLogprob, TopLogprob } from '../contract/model-provider.js';
import { encodeBase64Floats } from '../providers/openai-compatible/embeddings.js';

/** What the fake upstream answers a chat request whose last message contains `[refuse]`. */
export const FAKE_REFUSAL = "I'm sorry, but I can't help with that request.";

/** A failure to inject into the next inference calls (POST /v1/chat/completions and /v1/completions). */
export interface FakeUpstreamFailure {
  /** How many calls fail (default 1). */
  readonly count?: number;
  /**
   * - 'status' (default): answer `status` with `body`.
   * - 'reset': destroy the socket (TCP RST) before any response byte.
   * - 'reset-mid-stream': send the status line and half of the reply, then reset the socket.
   * - 'hang': never answer (until the client gives up or the server closes).
   * - 'malformed': answer 200 with a body that is not valid JSON (for streams: a data event that is not JSON).
   */
  readonly mode?: 'status' | 'reset' | 'reset-mid-stream' | 'hang' | 'malformed';
  /** HTTP status for mode 'status' (default 500). */
  readonly status?: number;
  /** Response body for mode 'status': a string is sent as is, anything else as JSON. Default: an OpenAI error object. */
  readonly body?: unknown;
  /** Extra response headers for mode 'status' (e.g. `retry-after`). */
  readonly headers?: Readonly<Record<string, string>>;
}

export interface FakeUpstreamOptions {
  /** Interface to listen on (default 127.0.0.1). Fixed at start. */
  readonly host?: string;
  /** Port to listen on (default 0: a free port). Fixed at start. */
  readonly port?: number;
  /** Delay before the first response byte of an inference call, in ms (default 0). */
  readonly latencyMs?: number;
  /** Content tokens per reply (default 16); `max_tokens` below it truncates with finish_reason 'length'. */
  readonly tokens?: number;
  /** Delay between stream chunks, in ms (default 0: the whole stream is written at once). */
  readonly interTokenDelayMs?: number;
  /** Model ids listed by GET /v1/models (default ['fake-model']). Requests for other models are still served. */
  readonly models?: readonly string[];
  /** When set, every route requires `Authorization: Bearer <apiKey>` (401 otherwise). */
  readonly apiKey?: string;
  /** When true, GET /v1/models answers 503 (for health checks). */
  readonly unhealthy?: boolean;
  /** When false, streams never carry a usage chunk even if `stream_options.include_usage` asks (default true). */
  readonly streamUsage?: boolean;
  /** Failure injection for the next inference calls. */
  readonly failNext?: FakeUpstreamFailure;
  /** How many recent requests `requests` keeps (default 100). */
  readonly recordLimit?: number;
  /** Size of embedding vectors when the request sets no `dimensions` (default 8). */
  readonly embeddingDimensions?: number;
}

export type FakeUpstreamRuntimeOptions = Omit<FakeUpstreamOptions, 'host' | 'port'>;

export interface RecordedRequest {
  readonly method: string;
  readonly path: string;
  readonly headers: IncomingHttpHeaders;
  /** The parsed JSON body (undefined when the body was not valid JSON). */
  readonly body: unknown;
}

/** The body of `GET /__fake/stats`: the counters of the FakeUpstream interface. */
export interface FakeUpstreamStats {
  readonly requestCount: number;
  readonly inFlight: number;
  readonly openConnections: number;
  readonly totalConnections: number;
  readonly abortedRequests: number;
  readonly abortedStreams: number;
}

export interface FakeUpstreamAbortEvent {
  readonly path: string;
  readonly stream: boolean;
}

export interface FakeUpstream {
  /** Base URL ending in /v1, e.g. http://127.0.0.1:41234/v1. */
  readonly url: string;
  readonly port: number;
  /** Inference calls received (POST to a completions route), including failed ones, since start/reset. */
  readonly requestCount: number;
  /** The most recent requests (all routes), oldest first, bounded by `recordLimit`. */
  readonly requests: readonly RecordedRequest[];
  /** TCP connections currently open. */
  readonly openConnections: number;
  /** TCP connections accepted since start/reset. */
  readonly totalConnections: number;
  /** Inference calls currently being answered. */
  readonly inFlight: number;
  /** Inference calls whose connection closed before the response was complete, since start/reset. */
  readonly abortedRequests: number;
  /** The subset of `abortedRequests` that were streams. */
  readonly abortedStreams: number;
  /** The current runtime options (with defaults applied). */
  readonly options: Readonly<Required<Omit<FakeUpstreamRuntimeOptions, 'failNext' | 'apiKey'>>> & {
    readonly apiKey: string | undefined;
  };
  /** Changes runtime options; `failNext` replaces any pending failure. */
  configure(options: FakeUpstreamRuntimeOptions): void;
  /**
   * Resolves once `abortedRequests` reaches `count` (default 1; call reset() before the scenario);
   * rejects after `timeoutMs` (default 5000).
   */
  waitForAbort(options?: { readonly count?: number; readonly timeoutMs?: number }): Promise<void>;
  /** Resolves once no inference call is in flight; rejects after `timeoutMs` (default 5000). */
  waitForIdle(options?: { readonly timeoutMs?: number }): Promise<void>;
  /** Zeroes the counters, clears the request log and any pending failure, and restores the start options. */
  reset(): void;
  /** Emitted when an inference call's connection closes before its response completed. */
  on(event: 'abort', listener: (event: FakeUpstreamAbortEvent) => void): this;
  off(event: 'abort', listener: (event: FakeUpstreamAbortEvent) => void): this;
  /** Stops listening and destroys every open connection. */
  close(): Promise<void>;
}

interface RuntimeState {
  latencyMs: number;
  tokens: number;
  interTokenDelayMs: number;
  models: readonly string[];
  apiKey: string | undefined;
  unhealthy: boolean;
  streamUsage: boolean;
  recordLimit: number;
  embeddingDimensions: number;
}

const CHAT_PATH = '/v1/chat/completions';
const COMPLETIONS_PATH = '/v1/completions';
const MODELS_PATH = '/v1/models';
const EMBEDDINGS_PATH = '/v1/embeddings';
/** The widest vectors the fake makes (OpenAI's widest model has 3072). */
const MAX_FAKE_DIMENSIONS = 8192;
const STATS_PATH = '/__fake/stats';

/** Starts a fake upstream; resolves once it listens. */
export async function startFakeUpstream(options: FakeUpstreamOptions = {}): Promise<FakeUpstream> {
  const upstream = new FakeUpstreamServer(options);
  await upstream.listen(options.host ?? '127.0.0.1', options.port ?? 0);
  return upstream;
}

/** FNV-1a (32 bit) of a string's UTF-16 code units, as 8 hex digits. */
export function fakeReplyHash(text: string): string {
  let hash = 0x811c9dc5;
  for (let i = 0; i < text.length; i += 1) {
    hash ^= text.charCodeAt(i);
    hash = Math.imul(hash, 0x01000193);
  }
  return (hash >>> 0).toString(16).padStart(8, '0');
}

/**
 * The fake upstream's embedding of `text`: `dimensions` values from a PRNG seeded with the text's
 * FNV-1a hash, scaled to unit length (as OpenAI's are), rounded to float32.
 */
export function fakeEmbedding(text: string, dimensions: number): number[] {
  let seed = Number.parseInt(fakeReplyHash(text), 16);
  const values = Array.from({ length: dimensions }, () => {
    // mulberry32
    seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296 - 0.5;
  });
  const norm = Math.hypot(...values) || 1;
  return values.map((v) => Math.fround(v / norm));
}

/** The reply tokens the fake upstream gives for `promptText` (before any max_tokens truncation). */
export function fakeReplyTokens(promptText: string, count: number): string[] {
  const hash = fakeReplyHash(promptText);
  return Array.from({ length: count }, (_, i) => (i === 0 ? hash : tokenWord(i)));
}

/** The reply text for `promptText` with `count` tokens. */
export function fakeReplyText(promptText: string, count: number): string {
  return fakeReplyTokens(promptText, count).join('');
}

/**
 * The fake upstream's log probability of token `index` (`token`) of the reply to `promptText`, with
 * `top` alternatives, in the contract's form (what a provider makes of the wire form). `bytes`:
 * whether the entries carry their UTF-8 bytes (chat answers do, legacy completions do not).
 */
export function fakeTokenLogprob(promptText: string, token: string, index: number, top: number, bytes = true): TokenLogprob {
  const seed = Number.parseInt(fakeReplyHash(promptText), 16);
  const entry = (text: string, logprob: number): TopLogprob => (bytes ? { token: text, logprob, bytes: utf8Bytes(text) } : { token: text, logprob });
  return { ...entry(token, tokenLogprob(seed, index)), top: alternatives(seed, token, index, top).map((a) => entry(a.token, a.logprob)) };
}

/** fakeTokenLogprob for every token of the reply to `promptText` with `count` tokens. */
export function fakeReplyLogprobs(promptText: string, count: number, top: number, bytes = true): TokenLogprob[] {
  return fakeReplyTokens(promptText, count).map((token, index) => fakeTokenLogprob(promptText, token, index, top, bytes));
}

/** Log probability of reply token `index` for a prompt whose hash is `seed`. */
function tokenLogprob(seed: number, index: number): number {
  return -(((seed + index) % 7) + 1) / 10;
}

/** The `top` alternatives at position `index`: the token itself, then `alt1`, `alt2`, ..., each 3 below the one before. */
function alternatives(seed: number, token: string, index: number, top: number): Array<{ token: string; logprob: number }> {
  const list: Array<{ token: string; logprob: number }> = [];
  for (let k = 0; k < top; k += 1) list.push({ token: k === 0 ? token : `alt${k}`, logprob: -(((seed + index) % 7) + 1 + 30 * k) / 10 });
  return list;
}

function utf8Bytes(text: string): number[] {
  return [...Buffer.from(text, 'utf8')];
}

const tokenWordCache: string[] = [];
function tokenWord(i: number): string {
  let word = tokenWordCache[i];
  if (word === undefined) {
    word = ` tok${i}`;
    tokenWordCache[i] = word;
  }
  return word;
}

/** Rough prompt token count: one per 4 characters, at least 1. */
function estimateTokens(text: string): number {
  return Math.max(1, Math.ceil(text.length / 4));
}

interface OpenAIErrorBody {
  error: { message: string; type: string; param: string | null; code: string | null };
}

function errorBody(message: string, type: string, param: string | null = null, code: string | null = null): OpenAIErrorBody {
  return { error: { message, type, param, code } };
}

function errorTypeFor(status: number): string {
  if (status === 401 || status === 403) return 'authentication_error';
  if (status === 404) return 'not_found_error';
  if (status === 429) return 'rate_limit_error';
  if (status >= 500) return 'server_error';
  return 'invalid_request_error';
}

class FakeUpstreamServer extends EventEmitter implements FakeUpstream {
  private readonly server: Server;
  private readonly startOptions: FakeUpstreamOptions;
  private state: RuntimeState;
  private failure: FakeUpstreamFailure | undefined;
  private failuresLeft = 0;
  private readonly log: RecordedRequest[] = [];
  private readonly timers = new Set<NodeJS.Timeout>();
  private readonly sockets = new Set<Socket>();
  private address: AddressInfo | undefined;
  private idCounter = 0;
  private closing = false;

  requestCount = 0;
  totalConnections = 0;
  inFlight = 0;
  abortedRequests = 0;
  abortedStreams = 0;

  constructor(options: FakeUpstreamOptions) {
    super();
    this.startOptions = options;
    this.state = FakeUpstreamServer.initialState(options);
    this.setFailure(options.failNext);
    this.server = createServer({ noDelay: true, keepAlive: true }, (req, res) => this.handle(req, res));
    // Clients (undici, NGINX) keep connections alive; do not close them under a benchmark.
    this.server.keepAliveTimeout = 65_000;
    this.server.headersTimeout = 66_000;
    this.server.requestTimeout = 0;
    this.server.on('connection', (socket: Socket) => {
      this.totalConnections += 1;
      this.sockets.add(socket);
      socket.once('close', () => this.sockets.delete(socket));
    });
  }

  private static initialState(options: FakeUpstreamRuntimeOptions): RuntimeState {
    return {
      latencyMs: options.latencyMs ?? 0,
      tokens: options.tokens ?? 16,
      interTokenDelayMs: options.interTokenDelayMs ?? 0,
      models: options.models ?? ['fake-model'],
      apiKey: options.apiKey,
      unhealthy: options.unhealthy ?? false,
      streamUsage: options.streamUsage ?? true,
      recordLimit: options.recordLimit ?? 100,
      embeddingDimensions: options.embeddingDimensions ?? 8,
    };
  }

  async listen(host: string, port: number): Promise<void> {
    this.server.listen(port, host);
    await once(this.server, 'listening');
    this.address = this.server.address() as AddressInfo;
  }

  get port(): number {
    return this.address?.port ?? 0;
  }

  get url(): string {
    const host = this.address?.family === 'IPv6' ? `[${this.address.address}]` : (this.address?.address ?? '127.0.0.1');
    return `http://${host}:${this.port}/v1`;
  }

  get requests(): readonly RecordedRequest[] {
    return [...this.log];
  }

  get openConnections(): number {
    return this.sockets.size;
  }

  get options(): FakeUpstream['options'] {
    const { latencyMs, tokens, interTokenDelayMs, models, apiKey, unhealthy, streamUsage, recordLimit, embeddingDimensions } = this.state;
    return { latencyMs, tokens, interTokenDelayMs, models, apiKey, unhealthy, streamUsage, recordLimit, embeddingDimensions };
  }

  configure(options: FakeUpstreamRuntimeOptions): void {
    const s = this.state;
    if (options.latencyMs !== undefined) s.latencyMs = options.latencyMs;
    if (options.tokens !== undefined) s.tokens = options.tokens;
    if (options.interTokenDelayMs !== undefined) s.interTokenDelayMs = options.interTokenDelayMs;
    if (options.models !== undefined) s.models = options.models;
    if ('apiKey' in options) s.apiKey = options.apiKey;
    if (options.unhealthy !== undefined) s.unhealthy = options.unhealthy;
    if (options.streamUsage !== undefined) s.streamUsage = options.streamUsage;
    if (options.recordLimit !== undefined) s.recordLimit = options.recordLimit;
    if (options.embeddingDimensions !== undefined) s.embeddingDimensions = options.embeddingDimensions;
    if ('failNext' in options) this.setFailure(options.failNext);
  }

  reset(): void {
    this.requestCount = 0;
    this.totalConnections = 0;
    this.abortedRequests = 0;
    this.abortedStreams = 0;
    this.log.length = 0;
    this.state = FakeUpstreamServer.initialState(this.startOptions);
    this.setFailure(undefined);
  }

  async waitForAbort(options: { readonly count?: number; readonly timeoutMs?: number } = {}): Promise<void> {
    const count = options.count ?? 1;
    await this.waitFor(() => this.abortedRequests >= count, options.timeoutMs ?? 5_000, () =>
      `waitForAbort: ${this.abortedRequests} aborted request(s), expected ${count}`,
    );
  }

  async waitForIdle(options: { readonly timeoutMs?: number } = {}): Promise<void> {
    await this.waitFor(() => this.inFlight === 0, options.timeoutMs ?? 5_000, () =>
      `waitForIdle: ${this.inFlight} inference call(s) still in flight`,
    );
  }

  private async waitFor(condition: () => boolean, timeoutMs: number, message: () => string): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!condition()) {
      if (Date.now() >= deadline) throw new Error(message());
      await new Promise((resolve) => setTimeout(resolve, 5));
    }
  }

  async close(): Promise<void> {
    if (this.closing) return;
    this.closing = true;
    for (const timer of this.timers) clearTimeout(timer);
    this.timers.clear();
    const closed = new Promise<void>((resolve) => this.server.close(() => resolve()));
    this.server.closeAllConnections();
    for (const socket of this.sockets) socket.destroy();
    await closed;
  }

  private setFailure(failure: FakeUpstreamFailure | undefined): void {
    this.failure = failure;
    this.failuresLeft = failure ? (failure.count ?? 1) : 0;
  }

  private takeFailure(): FakeUpstreamFailure | undefined {
    if (this.failuresLeft <= 0 || !this.failure) return undefined;
    this.failuresLeft -= 1;
    const failure = this.failure;
    if (this.failuresLeft === 0) this.failure = undefined;
    return failure;
  }

  private schedule(ms: number, fn: () => void): void {
    const timer = setTimeout(() => {
      this.timers.delete(timer);
      fn();
    }, ms);
    this.timers.add(timer);
  }

  private record(req: IncomingMessage, path: string, body: unknown): void {
    this.log.push({ method: req.method ?? 'GET', path, headers: req.headers, body });
    while (this.log.length > this.state.recordLimit) this.log.shift();
  }

  // ---------------------------------------------------------------------------------------------
  // Routing

  private handle(req: IncomingMessage, res: ServerResponse): void {
    const rawUrl = req.url ?? '/';
    const q = rawUrl.indexOf('?');
    const path = q === -1 ? rawUrl : rawUrl.slice(0, q);
    const method = req.method;
    const { apiKey } = this.state;
    if (apiKey !== undefined && req.headers.authorization !== `Bearer ${apiKey}`) {
      req.resume();
      this.record(req, path, undefined);
      this.sendJson(res, 401, errorBody('Incorrect API key provided', 'authentication_error', null, 'invalid_api_key'));
      return;
    }
    if (method === 'POST' && (path === CHAT_PATH || path === COMPLETIONS_PATH)) {
      this.readBody(req, (text) => this.inference(req, res, path, text));
      return;
    }
    if (method === 'POST' && path === EMBEDDINGS_PATH) {
      this.readBody(req, (text) => this.embeddings(req, res, path, text));
      return;
    }
    if (method === 'GET' && path === MODELS_PATH) {
      this.record(req, path, undefined);
      this.models(res);
      return;
    }
    if (method === 'GET' && path === STATS_PATH) {
      req.resume();
      this.sendJson(res, 200, this.stats());
      return;
    }
    req.resume();
    this.record(req, path, undefined);
    this.sendJson(res, 404, errorBody(`Unknown route ${method ?? ''} ${path}`, 'invalid_request_error', null, 'not_found'));
  }

  private stats(): FakeUpstreamStats {
    return {
      requestCount: this.requestCount,
      inFlight: this.inFlight,
      openConnections: this.openConnections,
      totalConnections: this.totalConnections,
      abortedRequests: this.abortedRequests,
      abortedStreams: this.abortedStreams,
    };
  }

  private readBody(req: IncomingMessage, done: (text: string) => void): void {
    let text = '';
    req.setEncoding('utf8');
    req.on('data', (chunk: string) => {
      text += chunk;
    });
    req.on('end', () => done(text));
  }

  private models(res: ServerResponse): void {
    if (this.state.unhealthy) {
      this.sendJson(res, 503, errorBody('The upstream is unhealthy', 'server_error'));
      return;
    }
    const created = Math.floor(Date.now() / 1000);
    this.sendJson(res, 200, {
      object: 'list',
      data: this.state.models.map((id) => ({ id, object: 'model', created, owned_by: 'fake-upstream' })),
    });
  }

  private sendJson(res: ServerResponse, status: number, body: unknown, headers?: Readonly<Record<string, string>>): void {
    const payload = typeof body === 'string' ? body : JSON.stringify(body);
    res.writeHead(status, {
      ...headers,
      'content-type': 'application/json',
      'content-length': Buffer.byteLength(payload),
    });
    res.end(payload);
  }

  // ---------------------------------------------------------------------------------------------
  // Inference

  /** Counts and records an inference call; returns its body when it is a JSON object. */
  private received(req: IncomingMessage, path: string, text: string): Record<string, unknown> | undefined {
    this.requestCount += 1;
    let body: Record<string, unknown> | undefined;
    try {
      const parsed: unknown = JSON.parse(text);
      if (parsed !== null && typeof parsed === 'object' && !Array.isArray(parsed)) body = parsed as Record<string, unknown>;
    } catch {
      body = undefined;
    }
    this.record(req, path, body);
    return body;
  }

  private inference(req: IncomingMessage, res: ServerResponse, path: string, text: string): void {
    const body = this.received(req, path, text);
    const chat = path === CHAT_PATH;
    const stream = body?.['stream'] === true;

    this.inFlight += 1;
    res.once('close', () => {
      this.inFlight -= 1;
      if (!res.writableFinished) {
        this.abortedRequests += 1;
        if (stream) this.abortedStreams += 1;
        this.emit('abort', { path, stream } satisfies FakeUpstreamAbortEvent);
      }
    });

    if (!body) {
      this.sendJson(res, 400, errorBody('The request body is not a valid JSON object', 'invalid_request_error'));
      return;
    }
    const failure = this.takeFailure();
    const promptText = chat ? chatPromptText(body['messages']) : completionPromptText(body['prompt']);
    if (promptText === undefined) {
      const param = chat ? 'messages' : 'prompt';
      this.sendJson(res, 400, errorBody(`'${param}' is required and must be valid`, 'invalid_request_error', param));
      return;
    }
    const maxTokens = numberField(body['max_completion_tokens']) ?? numberField(body['max_tokens']);
    const available = this.state.tokens;
    const count = maxTokens !== undefined && maxTokens < available ? Math.max(0, Math.floor(maxTokens)) : available;
    const tokens = fakeReplyTokens(promptText, count);
    const reply: Reply = {
      chat,
      id: `${chat ? 'chatcmpl' : 'cmpl'}-fake${(this.idCounter += 1)}`,
      model: typeof body['model'] === 'string' ? body['model'] : (this.state.models[0] ?? 'fake-model'),
      created: Math.floor(Date.now() / 1000),
      tokens,
      finishReason: count < available ? 'length' : 'stop',
      toolCalls: chat ? fakeToolCalls(body, promptText) : undefined,
      promptTokens: estimateTokens(promptText),
      includeUsage:
        this.state.streamUsage &&
        typeof body['stream_options'] === 'object' &&
        body['stream_options'] !== null &&
        (body['stream_options'] as Record<string, unknown>)['include_usage'] === true,
      logprobs: logprobsAsked(body, chat) ? logprobPlan(chat ? body['top_logprobs'] : body['logprobs'], promptText, tokens) : undefined,
    };

    const respond = (): void => {
      if (res.destroyed) return;
      if (failure) this.fail(res, failure, reply, stream);
      else if (chat && refuses(body)) {
        if (stream) res.writeHead(200, SSE_HEADERS).end(refusalStream(reply));
        else this.sendJson(res, 200, refusalBody(reply));
      }
      else if (stream && reply.toolCalls) res.writeHead(200, SSE_HEADERS).end(toolCallStream(reply, reply.toolCalls));
      else if (stream) this.stream(res, reply);
      else this.sendJson(res, 200, completeBody(reply));
    };
    const { latencyMs } = this.state;
    if (latencyMs > 0) this.schedule(latencyMs, respond);
    else respond();
  }

  private embeddings(req: IncomingMessage, res: ServerResponse, path: string, text: string): void {
    const body = this.received(req, path, text);
    const raw = body?.['input'];
    const inputs = typeof raw === 'string' ? [raw] : Array.isArray(raw) && raw.length > 0 && raw.every((x) => typeof x === 'string') ? (raw as string[]) : undefined;
    if (!body || !inputs || inputs.some((input) => input.length === 0)) {
      this.sendJson(res, 400, errorBody("'input' must be a non-empty string or array of non-empty strings", 'invalid_request_error', 'input'));
      return;
    }
    const requested = numberField(body['dimensions']);
    if (requested !== undefined && (!Number.isInteger(requested) || requested < 1 || requested > MAX_FAKE_DIMENSIONS)) {
      // As OpenAI does for a width its model does not have (and a huge one would not fit in memory).
      this.sendJson(res, 400, errorBody(`'dimensions' must be an integer from 1 to ${MAX_FAKE_DIMENSIONS}`, 'invalid_request_error', 'dimensions'));
      return;
    }
    const dimensions = requested ?? this.state.embeddingDimensions;
    const base64 = body['encoding_format'] === 'base64';
    const promptTokens = inputs.reduce((sum, input) => sum + estimateTokens(input), 0);
    const answer = {
      object: 'list',
      model: typeof body['model'] === 'string' ? body['model'] : (this.state.models[0] ?? 'fake-model'),
      data: inputs.map((input, index) => {
        const vector = fakeEmbedding(input, dimensions);
        return { object: 'embedding', index, embedding: base64 ? encodeBase64Floats(vector) : vector };
      }),
      usage: { prompt_tokens: promptTokens, total_tokens: promptTokens },
    };
    const respond = (): void => {
      if (!res.destroyed) this.sendJson(res, 200, answer);
    };
    this.inFlight += 1;
    res.once('close', () => {
      this.inFlight -= 1;
    });
    if (this.state.latencyMs > 0) this.schedule(this.state.latencyMs, respond);
    else respond();
  }

  private fail(res: ServerResponse, failure: FakeUpstreamFailure, reply: Reply, stream: boolean): void {
    switch (failure.mode ?? 'status') {
      case 'status': {
        const status = failure.status ?? 500;
        const body = failure.body ?? errorBody(`Injected failure (status ${status})`, errorTypeFor(status));
        this.sendJson(res, status, body, failure.headers);
        return;
      }
      case 'reset':
        resetSocket(res.socket);
        return;
      case 'hang':
        return;
      case 'malformed':
        if (stream) {
          res.writeHead(200, SSE_HEADERS);
          res.end('data: {"id": "broken", "choices": [\n\n');
        } else {
          res.writeHead(200, { 'content-type': 'application/json' });
          res.end('{"id": "broken", "choices": [');
        }
        return;
      case 'reset-mid-stream': {
        const half = { ...reply, tokens: reply.tokens.slice(0, Math.ceil(reply.tokens.length / 2)) };
        if (stream) {
          res.writeHead(200, SSE_HEADERS);
          res.write(streamHead(half) + half.tokens.map((token, index) => streamChunk(half, token, index)).join(''));
        } else {
          const payload = JSON.stringify(completeBody(reply));
          res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(payload) });
          res.write(payload.slice(0, Math.floor(payload.length / 2)));
        }
        // Let the partial response reach the client before the reset.
        this.schedule(5, () => resetSocket(res.socket));
        return;
      }
    }
  }

  private stream(res: ServerResponse, reply: Reply): void {
    res.writeHead(200, SSE_HEADERS);
    const delay = this.state.interTokenDelayMs;
    if (delay <= 0) {
      let payload = streamHead(reply);
      for (let index = 0; index < reply.tokens.length; index += 1) payload += streamChunk(reply, reply.tokens[index] as string, index);
      res.end(payload + streamTail(reply));
      return;
    }
    res.write(streamHead(reply));
    let index = 0;
    const next = (): void => {
      if (res.destroyed || this.closing) return;
      const token = reply.tokens[index];
      if (token === undefined) {
        res.end(streamTail(reply));
        return;
      }
      res.write(streamChunk(reply, token, index));
      index += 1;
      this.schedule(delay, next);
    };
    this.schedule(delay, next);
  }
}

function resetSocket(socket: Socket | null): void {
  if (!socket) return;
  if (typeof socket.resetAndDestroy === 'function') socket.resetAndDestroy();
  else socket.destroy();
}

const SSE_HEADERS = {
  'content-type': 'text/event-stream',
  'cache-control': 'no-cache',
  'x-accel-buffering': 'no',
} as const;

interface Reply {
  readonly chat: boolean;
  readonly id: string;
  readonly model: string;
  readonly created: number;
  readonly tokens: readonly string[];
  readonly finishReason: 'stop' | 'length';
  readonly promptTokens: number;
  readonly includeUsage: boolean;
  /** Set when the reply is tool calls rather than text. */
  readonly toolCalls: readonly FakeToolCall[] | undefined;
  /** Set when the request asked for logprobs. */
  readonly logprobs: LogprobPlan | undefined;
}

/** The logprobs of a reply: how many alternatives, the prompt's hash, each token's offset in the text. */
interface LogprobPlan {
  readonly top: number;
  readonly seed: number;
  readonly offsets: readonly number[];
}

/** Chat: `logprobs: true`; completions: a numeric `logprobs` (the legacy form). */
function logprobsAsked(body: Record<string, unknown>, chat: boolean): boolean {
  const logprobs = body['logprobs'];
  return chat ? logprobs === true : typeof logprobs === 'number';
}

function logprobPlan(top: unknown, promptText: string, tokens: readonly string[]): LogprobPlan {
  const offsets: number[] = [];
  let offset = 0;
  for (const token of tokens) {
    offsets.push(offset);
    offset += token.length;
  }
  const n = Math.floor(numberField(top) ?? 0);
  return { top: Math.min(20, Math.max(0, n)), seed: Number.parseInt(fakeReplyHash(promptText), 16), offsets };
}

/** Chat's `logprobs.content` entry of reply token `index`. */
function chatLogprobEntry(plan: LogprobPlan, token: string, index: number): unknown {
  const top = alternatives(plan.seed, token, index, plan.top).map((a) => ({ ...a, bytes: utf8Bytes(a.token) }));
  return { token, logprob: tokenLogprob(plan.seed, index), bytes: utf8Bytes(token), top_logprobs: top };
}

/** Chat's `choices[0].logprobs` for the reply tokens `tokens`, the first of which is number `from`. */
function chatLogprobs(plan: LogprobPlan, tokens: readonly string[], from: number): unknown {
  return { content: tokens.map((token, i) => chatLogprobEntry(plan, token, from + i)), refusal: null };
}

/** The legacy completions `choices[0].logprobs` for the reply tokens `tokens`, the first of which is number `from`. */
function legacyLogprobs(plan: LogprobPlan, tokens: readonly string[], from: number): unknown {
  return {
    tokens,
    token_logprobs: tokens.map((_, i) => tokenLogprob(plan.seed, from + i)),
    top_logprobs: tokens.map((token, i) => Object.fromEntries(alternatives(plan.seed, token, from + i, plan.top).map((a) => [a.token, a.logprob]))),
    text_offset: tokens.map((_, i) => plan.offsets[from + i]),
  };
}

/** `choices[0].logprobs` of a reply (null when not asked for) for its tokens from number `from`. */
function replyLogprobs(reply: Reply, tokens: readonly string[], from: number): unknown {
  const plan = reply.logprobs;
  if (plan === undefined) return null;
  return reply.chat ? chatLogprobs(plan, tokens, from) : legacyLogprobs(plan, tokens, from);
}

interface FakeToolCall {
  readonly id: string;
  readonly name: string;
  readonly arguments: string;
}

/** The tool calls a chat request gets (see the header), or undefined for a text reply. */
function fakeToolCalls(body: Record<string, unknown>, promptText: string): FakeToolCall[] | undefined {
  const tools = body['tools'];
  const choice = body['tool_choice'];
  const messages = body['messages'] as unknown[];
  const last = messages[messages.length - 1] as Record<string, unknown> | null;
  if (!Array.isArray(tools) || tools.length === 0 || choice === 'none' || last?.['role'] === 'tool') return undefined;
  const functions = (tools as unknown[]).map((tool) => {
    const fn = tool !== null && typeof tool === 'object' ? (tool as Record<string, unknown>)['function'] : undefined;
    return fn !== null && typeof fn === 'object' ? (fn as Record<string, unknown>) : {};
  });
  let chosen: Array<Record<string, unknown>>;
  if (choice !== null && typeof choice === 'object') {
    const name = ((choice as Record<string, unknown>)['function'] as Record<string, unknown> | undefined)?.['name'];
    chosen = functions.filter((fn) => fn['name'] === name).slice(0, 1);
  } else {
    chosen = functions.slice(0, body['parallel_tool_calls'] === false ? 1 : 2);
  }
  const hash = fakeReplyHash(promptText);
  return chosen.map((fn, i) => {
    const properties = (fn['parameters'] as Record<string, unknown> | undefined)?.['properties'];
    const keys = properties !== null && typeof properties === 'object' ? Object.keys(properties) : [];
    const args = Object.fromEntries((keys.length > 0 ? keys : ['input']).map((key) => [key, hash]));
    return { id: `call_${hash}_${i}`, name: typeof fn['name'] === 'string' ? fn['name'] : 'unnamed', arguments: JSON.stringify(args) };
  });
}

/** The whole SSE body of a tool-call reply: role, each call's id and name, its arguments in three pieces, finish, usage, [DONE]. */
function toolCallStream(reply: Reply, calls: readonly FakeToolCall[]): string {
  let body = sse(chunkEnvelope(reply, [{ index: 0, delta: { role: 'assistant', content: null }, logprobs: null, finish_reason: null }]));
  const piece = (delta: unknown) => sse(chunkEnvelope(reply, [{ index: 0, delta: { tool_calls: [delta] }, logprobs: null, finish_reason: null }]));
  calls.forEach((call, index) => {
    body += piece({ index, id: call.id, type: 'function', function: { name: call.name, arguments: '' } });
    const third = Math.ceil(call.arguments.length / 3);
    for (let at = 0; at < call.arguments.length; at += third) body += piece({ index, function: { arguments: call.arguments.slice(at, at + third) } });
  });
  body += sse(chunkEnvelope(reply, [{ index: 0, delta: {}, logprobs: null, finish_reason: 'tool_calls' }]));
  if (reply.includeUsage) body += sse({ ...chunkEnvelope(reply, []), usage: usageOf(reply) });
  return `${body}data: [DONE]\n\n`;
}

/** True when the last message of a chat request asks to be refused (see the header). */
function refuses(body: Record<string, unknown>): boolean {
  const messages = body['messages'];
  if (!Array.isArray(messages)) return false;
  const content = (messages[messages.length - 1] as Record<string, unknown> | null)?.['content'];
  return typeof content === 'string' && content.includes('[refuse]');
}

function refusalUsage(reply: Reply) {
  const completion = 3;
  return { prompt_tokens: reply.promptTokens, completion_tokens: completion, total_tokens: reply.promptTokens + completion };
}

function refusalBody(reply: Reply): unknown {
  return {
    id: reply.id,
    object: 'chat.completion',
    created: reply.created,
    model: reply.model,
    choices: [{ index: 0, message: { role: 'assistant', content: null, refusal: FAKE_REFUSAL }, logprobs: null, finish_reason: 'stop' }],
    usage: refusalUsage(reply),
  };
}

/** The refusal as a stream: the role chunk, the refusal in three pieces, finish, usage, [DONE]. */
function refusalStream(reply: Reply): string {
  let body = sse(chunkEnvelope(reply, [{ index: 0, delta: { role: 'assistant', content: null, refusal: '' }, logprobs: null, finish_reason: null }]));
  const third = Math.ceil(FAKE_REFUSAL.length / 3);
  for (let at = 0; at < FAKE_REFUSAL.length; at += third) {
    body += sse(chunkEnvelope(reply, [{ index: 0, delta: { refusal: FAKE_REFUSAL.slice(at, at + third) }, logprobs: null, finish_reason: null }]));
  }
  body += sse(chunkEnvelope(reply, [{ index: 0, delta: {}, logprobs: null, finish_reason: 'stop' }]));
  if (reply.includeUsage) body += sse({ ...chunkEnvelope(reply, []), usage: refusalUsage(reply) });
  return `${body}data: [DONE]

`;
}

function usageOf(reply: Reply): { prompt_tokens: number; completion_tokens: number; total_tokens: number } {
  // A tool call counts its name and three argument pieces.
  const completion = reply.toolCalls ? reply.toolCalls.length * 4 : reply.tokens.length;
  return { prompt_tokens: reply.promptTokens, completion_tokens: completion, total_tokens: reply.promptTokens + completion };
}

function completeBody(reply: Reply): unknown {
  const text = reply.tokens.join('');
  return reply.chat
    ? {
        id: reply.id,
        object: 'chat.completion',
        created: reply.created,
        model: reply.model,
        choices: [
          reply.toolCalls
            ? {
                index: 0,
                message: {
                  role: 'assistant',
                  content: null,
                  tool_calls: reply.toolCalls.map((call) => ({ id: call.id, type: 'function', function: { name: call.name, arguments: call.arguments } })),
                },
                logprobs: null,
                finish_reason: 'tool_calls',
              }
            : { index: 0, message: { role: 'assistant', content: text }, logprobs: replyLogprobs(reply, reply.tokens, 0), finish_reason: reply.finishReason },
        ],
        usage: usageOf(reply),
      }
    : {
        id: reply.id,
        object: 'text_completion',
        created: reply.created,
        model: reply.model,
        choices: [{ index: 0, text, logprobs: replyLogprobs(reply, reply.tokens, 0), finish_reason: reply.finishReason }],
        usage: usageOf(reply),
      };
}

function sse(data: unknown): string {
  return `data: ${JSON.stringify(data)}\n\n`;
}

function chunkEnvelope(reply: Reply, choices: unknown[]): Record<string, unknown> {
  return {
    id: reply.id,
    object: reply.chat ? 'chat.completion.chunk' : 'text_completion',
    created: reply.created,
    model: reply.model,
    choices,
  };
}

/** The role chunk (chat only). */
function streamHead(reply: Reply): string {
  if (!reply.chat) return '';
  return sse(chunkEnvelope(reply, [{ index: 0, delta: { role: 'assistant', content: '' }, logprobs: null, finish_reason: null }]));
}

/** The chunk of reply token number `index`. */
function streamChunk(reply: Reply, token: string, index: number): string {
  const logprobs = reply.logprobs === undefined ? null : replyLogprobs(reply, [token], index);
  return sse(
    chunkEnvelope(reply, [
      reply.chat
        ? { index: 0, delta: { content: token }, logprobs, finish_reason: null }
        : { index: 0, text: token, logprobs, finish_reason: null },
    ]),
  );
}

/** The finish chunk, the usage chunk when asked, and [DONE]. */
function streamTail(reply: Reply): string {
  let tail = sse(
    chunkEnvelope(reply, [
      reply.chat
        ? { index: 0, delta: {}, logprobs: null, finish_reason: reply.finishReason }
        : { index: 0, text: '', logprobs: null, finish_reason: reply.finishReason },
    ]),
  );
  if (reply.includeUsage) tail += sse({ ...chunkEnvelope(reply, []), usage: usageOf(reply) });
  return `${tail}data: [DONE]\n\n`;
}

function numberField(value: unknown): number | undefined {
  return typeof value === 'number' && Number.isFinite(value) ? value : undefined;
}

function chatPromptText(messages: unknown): string | undefined {
  if (!Array.isArray(messages) || messages.length === 0) return undefined;
  const parts: string[] = [];
  for (const message of messages as unknown[]) {
    if (message === null || typeof message !== 'object') return undefined;
    const content = (message as Record<string, unknown>)['content'];
    if (typeof content === 'string') parts.push(content);
    else if (Array.isArray(content)) {
      for (const part of content as unknown[]) {
        const text = part !== null && typeof part === 'object' ? (part as Record<string, unknown>)['text'] : undefined;
        if (typeof text === 'string') parts.push(text);
      }
    } else if (content !== null && content !== undefined) return undefined;
  }
  return parts.join('\n');
}

function completionPromptText(prompt: unknown): string | undefined {
  if (typeof prompt === 'string') return prompt;
  if (Array.isArray(prompt) && prompt.every((p) => typeof p === 'string')) return prompt.join('\n');
  return undefined;
}
