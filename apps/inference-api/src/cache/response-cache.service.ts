import type { IncomingHttpHeaders } from 'node:http';
import {
  abortedError,
  addToolCallPart,
  type GenerationResult,
  isAbortError,
  ModelProviderError,
  type StreamPart,
  type TokenLogprob,
  type ToolCallDraft,
} from '@infer/model-providers';
import type { Cache } from 'cache-manager';
import { abortControllers } from '../common/abort-pool.js';
import { ApiError } from '../common/api-error.js';
import { mapError, retryAfterOf } from '../common/error-mapping.js';
import type { InferenceJob } from '../openai/inference.service.js';
import type { CacheClient } from '../common/client-link.js';
import { ageSeconds, type CacheEntry, entryFromResult, parseEntry, replayParts, replayStream, resultOf } from './cache-entry.js';
import { type CachePlan, type CachePolicyConfig, planRequest, type UsePlan } from './cache-policy.js';
import { LiveStream } from './live-stream.js';
import type { HeldLock, RedisCoalescer } from './redis-coalescer.js';
import type { CacheLogger, RedisConnection } from './redis-connection.js';

/** How the cache reaches the model when it has to: the router, bound to one job. */
export interface Upstream {
  generate(signal: AbortSignal): Promise<GenerationResult>;
  stream(signal: AbortSignal): AsyncIterable<StreamPart>;
}

export type CacheHeaders = Readonly<Record<string, string>>;

export interface ServedResult {
  readonly result: GenerationResult;
  /** `x-cache` (and `age` on hits); undefined when the cache is off. */
  readonly headers: CacheHeaders | undefined;
}

export interface ServedStream {
  readonly parts: AsyncIterable<StreamPart>;
  /** Resolved once the first part is there (a request waiting on another process learns late whether it is a hit). */
  readonly headers: CacheHeaders | (() => CacheHeaders) | undefined;
}

export interface ResponseCacheOptions {
  readonly config: CachePolicyConfig;
  /** cache-manager (from @nestjs/cache-manager) on a Keyv store. */
  readonly cache: Cache;
  /** Per-model TTL from the models file. */
  readonly modelTtlSeconds: (model: string) => number | undefined;
  readonly logger: CacheLogger;
  /** Set with REDIS_URL: store calls are bounded and skipped while Redis is unavailable. */
  readonly redis?: RedisConnection;
  /** Set with REDIS_URL: single-flight across processes. */
  readonly coalescer?: RedisCoalescer;
}

export const BYPASS_HEADERS: CacheHeaders = Object.freeze({ 'x-cache': 'BYPASS' });
export const MISS_HEADERS: CacheHeaders = Object.freeze({ 'x-cache': 'MISS' });
const HIT_FRESH_HEADERS: CacheHeaders = Object.freeze({ 'x-cache': 'HIT', age: '0' });

/** `x-cache: HIT` and the `age` of the entry (of this cache's or the embeddings cache's). */
export function hitHeaders(entry: Pick<CacheEntry, 'createdAt'> | undefined): CacheHeaders {
  const age = entry ? ageSeconds(entry) : 0;
  return age === 0 ? HIT_FRESH_HEADERS : { 'x-cache': 'HIT', age: String(age) };
}

/** Where a flight's result came from: our own upstream call, the store, or another process's leader. */
type Origin = 'upstream' | 'store' | 'remote';

const noop = () => undefined;

/**
 * One generation in flight for a cache key, shared by every identical request of this process.
 * Its upstream call has its own AbortController: it is aborted only when every consumer is gone,
 * so the first client disconnecting does not break the others.
 */
class Flight {
  readonly live: LiveStream | undefined;
  settled = false;
  entry: CacheEntry | undefined;
  origin: Origin | undefined;
  /**
   * The upstream's own result of a non-stream flight: what its leader answers. The entry keeps
   * only what any later request may be told (its usage without `cachedPromptTokens`, which is
   * about this one evaluation).
   */
  result: GenerationResult | undefined;
  private error: unknown;
  private consumers = 0;
  /** Created when a request joins (most flights have none): see `done`. */
  private waiting: { promise: Promise<CacheEntry>; resolve: (entry: CacheEntry) => void; reject: (error: unknown) => void } | undefined;

  constructor(
    readonly plan: UsePlan,
    streaming: boolean,
    /** The upstream call's controller: lent by the leading request (see CacheClient.adopt), or its own. */
    private readonly controller: AbortController,
    private readonly onAbandon: (flight: Flight) => void,
  ) {
    this.live = streaming ? new LiveStream() : undefined;
  }

  /** Settles with the flight (for the requests that joined it; the leader awaits its own run). */
  get done(): Promise<CacheEntry> {
    if (this.settled) return this.entry ? Promise.resolve(this.entry) : Promise.reject(this.error);
    if (!this.waiting) {
      let resolve!: (entry: CacheEntry) => void;
      let reject!: (error: unknown) => void;
      const promise = new Promise<CacheEntry>((res, rej) => {
        resolve = res;
        reject = rej;
      });
      this.waiting = { promise, resolve, reject };
    }
    return this.waiting.promise;
  }

  get key(): string {
    return this.plan.key;
  }

  get signal(): AbortSignal {
    return this.controller.signal;
  }

  /** Called once the flight's upstream work is over: the controller goes back to the pool if it can be reused. */
  recycle(): void {
    abortControllers.release(this.controller);
  }

  /** Registers a consumer; the returned function (idempotent) unregisters it. */
  attach(): () => void {
    this.consumers += 1;
    let attached = true;
    return () => {
      if (!attached) return;
      attached = false;
      this.consumers -= 1;
      if (this.consumers === 0 && !this.settled) {
        this.controller.abort();
        this.onAbandon(this);
      }
    };
  }

  /** Ends the flight with an entry. `liveFed`: the live stream already carries every part. */
  complete(entry: CacheEntry, origin: Origin, liveFed: boolean): void {
    if (this.settled) return;
    this.settled = true;
    this.entry = entry;
    this.origin = origin;
    if (this.live) {
      if (!liveFed) for (const part of replayParts(entry)) this.live.push(part);
      this.live.end();
    }
    this.waiting?.resolve(entry);
  }

  fail(error: unknown): void {
    if (this.settled) return;
    this.settled = true;
    this.error = error;
    this.live?.fail(error);
    this.waiting?.reject(error);
  }
}

type Source =
  | { readonly entry: CacheEntry }
  /** `run`: set for the request that leads the flight (it resolves as soon as the entry is there). */
  | { readonly flight: Flight; readonly leader: boolean; readonly detach: () => void; readonly run?: Promise<CacheEntry> };

/**
 * The response cache: lookup, single-flight (in-process, and across processes through Redis),
 * storing, and replay. The controllers stay unaware of it: CompletionResponder and PredictService
 * ask it for a result or a stream and write what they get.
 *
 * Cost on the hot path: BYPASS decisions happen before hashing; a miss is one sha256 and one store
 * read (plus, with Redis, one lock script); the write happens after the response is under way.
 */
export class ResponseCacheService {
  /** Counters for logs, tests and a future /metrics. */
  readonly stats = { hits: 0, misses: 0, bypasses: 0, coalesced: 0, storeErrors: 0 };
  /**
   * Flights by cache key, each behind a slot that `forget` empties. The map lives as long as the
   * process (old generation) and gets a new hash table as flights come and go; a discarded table
   * still points at what it held until the next full GC, so without the slot it would keep whole
   * flights (plan, entry, controller) alive through scavenges and get them promoted.
   */
  private readonly flights = new Map<string, { flight: Flight | undefined }>();
  private readonly config: CachePolicyConfig;
  private readonly cache: Cache;
  private readonly modelTtlSeconds: (model: string) => number | undefined;
  private readonly logger: CacheLogger;
  private readonly redis: RedisConnection | undefined;
  private readonly coalescer: RedisCoalescer | undefined;

  constructor(options: ResponseCacheOptions) {
    this.config = options.config;
    this.cache = options.cache;
    this.modelTtlSeconds = options.modelTtlSeconds;
    this.logger = options.logger;
    this.redis = options.redis;
    this.coalescer = options.coalescer;
  }

  get enabled(): boolean {
    return this.config.enabled;
  }

  /** Generations in flight in this process (for tests and shutdown logs). */
  get inFlight(): number {
    return this.flights.size;
  }

  plan(job: InferenceJob, headers: IncomingHttpHeaders): CachePlan {
    return planRequest(job, headers, this.config, this.config.enabled ? this.modelTtlSeconds(job.model) : undefined);
  }

  /** A non-streamed result: from the cache, from an identical request in flight, or from upstream. */
  async generate(job: InferenceJob, headers: IncomingHttpHeaders, upstream: Upstream, client: CacheClient): Promise<ServedResult> {
    const plan = this.plan(job, headers);
    if (plan.mode === 'off') return { result: await upstream.generate(client.signal), headers: undefined };
    if (plan.mode === 'bypass') {
      this.stats.bypasses += 1;
      return { result: await upstream.generate(client.signal), headers: BYPASS_HEADERS };
    }
    const source = await this.source(plan, upstream, false, client);
    if ('entry' in source) return { result: resultOf(source.entry), headers: hitHeaders(source.entry) };
    const entry = source.run ? await this.awaitRun(source.run, client, source.detach) : await this.awaitFlight(source.flight, client, source.detach);
    const own = source.leader ? source.flight.result : undefined;
    return { result: own ?? resultOf(entry), headers: this.flightHeaders(source.flight, source.leader) };
  }

  /** A streamed result: a replay of an entry, the live stream of a generation in flight, or a new one. */
  async stream(job: InferenceJob, headers: IncomingHttpHeaders, upstream: Upstream, client: CacheClient): Promise<ServedStream> {
    const plan = this.plan(job, headers);
    if (plan.mode === 'off') return { parts: upstream.stream(client.signal), headers: undefined };
    if (plan.mode === 'bypass') {
      this.stats.bypasses += 1;
      return { parts: upstream.stream(client.signal), headers: BYPASS_HEADERS };
    }
    const source = await this.source(plan, upstream, true, client);
    if ('entry' in source) return { parts: replayStream(source.entry), headers: hitHeaders(source.entry) };
    const { flight, leader, detach } = source;
    const parts = flight.live ? flight.live.subscribe(client, detach) : this.replayWhenDone(flight, client, detach);
    return { parts, headers: () => this.flightHeaders(flight, leader) };
  }

  /**
   * Finds what answers `plan`: a stored entry, an identical generation in flight (joined), or a
   * new flight led by this request. The consumer of a flight is attached here, synchronously.
   */
  private async source(plan: UsePlan, upstream: Upstream, streaming: boolean, client: CacheClient): Promise<Source> {
    if (!plan.refresh) {
      let running = this.flights.get(plan.key)?.flight;
      if (!running) {
        const entry = await this.read(plan.key, plan.maxAgeMs);
        if (entry) {
          this.stats.hits += 1;
          return { entry };
        }
        running = this.flights.get(plan.key)?.flight;
      }
      if (running) {
        this.stats.coalesced += 1;
        return { flight: running, leader: false, detach: running.attach() };
      }
    }
    this.stats.misses += 1;
    const flight = new Flight(plan, streaming, client.adopt?.() ?? abortControllers.acquire(), (f) => this.forget(f));
    this.flights.set(plan.key, { flight });
    const detach = flight.attach();
    const run = this.run(flight, upstream);
    // Marked handled now: the leader awaits it a few ticks later (streams read the live stream instead).
    run.catch(noop);
    return streaming ? { flight, leader: true, detach } : { flight, leader: true, detach, run };
  }

  private flightHeaders(flight: Flight, leader: boolean): CacheHeaders {
    if (leader && (flight.origin === undefined || flight.origin === 'upstream')) return MISS_HEADERS;
    return flight.origin === 'upstream' || flight.origin === undefined ? HIT_FRESH_HEADERS : hitHeaders(flight.entry);
  }

  /**
   * Leads a flight: take the distributed lock (or wait for the process that has it), generate, then
   * (without making the leader wait) store and tell the others. Resolves with the entry as soon as
   * it is there; rejects with the flight's error.
   */
  private async run(flight: Flight, upstream: Upstream): Promise<CacheEntry> {
    const { key, plan } = flight;
    let lock: HeldLock | undefined;
    try {
      if (this.coalescer) {
        const acquired = await this.coalescer.acquire(key, !plan.refresh);
        if (acquired.result === 'acquired') {
          lock = acquired.lock;
        } else if (acquired.result === 'cached') {
          // Another process stored it between our read and now (or it is older than max-age, or corrupt: then lead).
          const entry = await this.read(key, plan.maxAgeMs);
          if (entry) return this.settleFromElsewhere(flight, entry, 'store');
        } else if (acquired.result === 'busy' && !plan.refresh) {
          const outcome = await this.coalescer.waitForLeader(key, {
            signal: flight.signal,
            deadline: Date.now() + this.config.coalesceWaitMs,
            readEntry: () => this.read(key, plan.maxAgeMs),
          });
          switch (outcome.kind) {
            case 'entry':
              return this.settleFromElsewhere(flight, outcome.entry, 'remote');
            case 'error': {
              const e = outcome.body.error;
              throw new ApiError(outcome.status, e.message, e.type, e.code, e.param, outcome.retryAfterSeconds);
            }
            case 'aborted':
              throw abortedError();
            case 'lead':
              lock = outcome.lock;
              break;
            default: {
              const unreachable: never = outcome;
              return unreachable;
            }
          }
        }
      }
      if (flight.signal.aborted) throw abortedError();
      let entry: CacheEntry;
      if (flight.live) {
        entry = await this.pump(flight, upstream);
      } else {
        const result = await upstream.generate(flight.signal);
        flight.result = result;
        entry = entryFromResult(result);
      }
      flight.complete(entry, 'upstream', true);
      this.store(flight, entry, lock).catch((error: unknown) => this.logger.warn(`storing a response-cache entry failed: ${String(error)}`));
      return entry;
    } catch (error) {
      flight.fail(error);
      this.retire(flight);
      // The leader learns it first; other processes are told in the background.
      if (lock) this.reportFailure(key, lock, error).catch(noop);
      throw error;
    }
  }

  /** Tells the processes waiting on `key` how the generation ended (retry it, or this error), and frees the lock. */
  private async reportFailure(key: string, lock: HeldLock, error: unknown): Promise<void> {
    try {
      if (isAbortError(error)) {
        await this.coalescer?.publish(key, { t: 'retry' });
      } else {
        const { status, body } = mapError(error);
        const wait = retryAfterOf(error);
        await this.coalescer?.publish(key, { t: 'err', s: status, b: body, ...(wait === undefined ? {} : { r: wait }) });
      }
    } finally {
      await lock.release();
    }
  }

  /** The flight's entry came from the store or from another process's leader: nothing to store. */
  private settleFromElsewhere(flight: Flight, entry: CacheEntry, origin: Origin): CacheEntry {
    flight.complete(entry, origin, false);
    this.retire(flight);
    return entry;
  }

  /**
   * After a generation: store the entry, tell waiting processes, release the lock. The flight stays
   * joinable until the entry is stored, so there is no window in which an identical request finds
   * neither.
   */
  private async store(flight: Flight, entry: CacheEntry, lock: HeldLock | undefined): Promise<void> {
    const { key, plan } = flight;
    try {
      await this.write(key, entry, plan.ttlMs);
      if (lock) await this.coalescer?.publish(key, { t: 'ok', e: entry });
    } finally {
      if (lock) await lock.release();
      this.retire(flight);
    }
  }

  /** The flight's upstream work is over: no longer joinable, its AbortController back to the pool. */
  private retire(flight: Flight): void {
    this.forget(flight);
    flight.recycle();
  }

  /** Streams upstream into the flight's live stream, and returns the entry if it ended normally. */
  private async pump(flight: Flight, upstream: Upstream): Promise<CacheEntry> {
    const live = flight.live as LiveStream;
    const chunks: number[] = [];
    let text = '';
    let finish: Extract<StreamPart, { type: 'finish' }> | undefined;
    let toolCalls: ToolCallDraft[] | undefined;
    let logprobs: TokenLogprob[] | undefined;
    let refusal: string | undefined;
    for await (const part of upstream.stream(flight.signal)) {
      if (part.type === 'delta') {
        if (part.logprobs !== undefined) (logprobs ??= []).push(...part.logprobs);
        else if (part.text.length === 0) continue;
        text += part.text;
        if (part.text.length > 0) chunks.push(part.text.length);
      } else if (part.type === 'tool_call') {
        addToolCallPart((toolCalls ??= []), part);
      } else if (part.type === 'refusal') {
        refusal = (refusal ?? '') + part.text;
      } else if (finish) {
        continue;
      } else {
        finish = part;
      }
      live.push(part);
    }
    if (flight.signal.aborted) throw abortedError();
    if (!finish) {
      throw new ModelProviderError('The upstream stream ended without a finish event', { code: 'upstream_error', isRetryable: false });
    }
    // With logprobs the entry keeps them instead of the chunking (see CacheEntry.logprobs).
    const withRefusal = refusal === undefined ? {} : { refusal };
    if (logprobs !== undefined) return entryFromResult({ text, finishReason: finish.finishReason, usage: finish.usage, toolCalls, logprobs, ...withRefusal });
    return entryFromResult({ text, finishReason: finish.finishReason, usage: finish.usage, toolCalls, ...withRefusal }, Date.now(), chunks);
  }

  /**
   * The leader waits for its own run. Its client leaving detaches it (which aborts the upstream call
   * unless other requests joined); the run then settles promptly, or, when others still wait, the
   * leader's request ends as aborted once the entry is there.
   */
  private async awaitRun(run: Promise<CacheEntry>, client: CacheClient, detach: () => void): Promise<CacheEntry> {
    const unregister = client.onGone(detach);
    try {
      const entry = await run;
      if (client.gone) throw abortedError();
      return entry;
    } finally {
      unregister();
      detach();
    }
  }

  private async awaitFlight(flight: Flight, client: CacheClient, detach: () => void): Promise<CacheEntry> {
    try {
      if (flight.entry) return flight.entry;
      return await new Promise<CacheEntry>((resolve, reject) => {
        const unregister = client.onGone(() => reject(abortedError()));
        flight.done.then(
          (entry) => {
            unregister();
            resolve(entry);
          },
          (error: unknown) => {
            unregister();
            reject(error);
          },
        );
      });
    } finally {
      detach();
    }
  }

  private async *replayWhenDone(flight: Flight, client: CacheClient, detach: () => void): AsyncGenerator<StreamPart> {
    const entry = await this.awaitFlight(flight, client, detach);
    yield* replayParts(entry);
  }

  private forget(flight: Flight): void {
    const slot = this.flights.get(flight.key);
    if (slot?.flight !== flight) return;
    slot.flight = undefined;
    this.flights.delete(flight.key);
  }

  /** Reads and validates an entry; any failure (Redis down or slow, corrupt data) is a miss. */
  private async read(key: string, maxAgeMs?: number): Promise<CacheEntry | undefined> {
    let raw: unknown;
    try {
      if (this.redis) {
        if (!this.redis.available) return undefined;
        raw = await this.redis.bounded(this.cache.get<unknown>(key));
      } else {
        raw = await this.cache.get<unknown>(key);
      }
    } catch {
      return undefined;
    }
    if (raw === undefined || raw === null) return undefined;
    const entry = parseEntry(raw);
    if (!entry) {
      this.logger.warn(`ignored an unreadable response-cache entry (${key})`);
      return undefined;
    }
    if (maxAgeMs !== undefined && Date.now() - entry.createdAt > maxAgeMs) return undefined;
    return entry;
  }

  private async write(key: string, entry: CacheEntry, ttlMs: number): Promise<void> {
    try {
      if (this.redis) {
        if (!this.redis.available) return;
        await this.redis.bounded(this.cache.set(key, entry, ttlMs));
      } else {
        await this.cache.set(key, entry, ttlMs);
      }
    } catch {
      this.stats.storeErrors += 1;
    }
  }
}
