import type { Keyv } from 'keyv';
import type { AtomicEntries } from '../cache/redis-store.js';
import type { ApiKeyRecord } from '../common/api-keys.js';
import { boundedMemoryKeyv } from '../cache/bounded-memory-store.js';
import type { CacheLogger, RedisConnection } from '../cache/redis-connection.js';
import { ApiError } from '../common/api-error.js';
import type { AppConfig } from '../config/app-config.js';
import type { ResponsesInputItem } from './responses.schemas.js';

/** An input item as stored and listed (GET /v1/responses/{id}/input_items): with its id. */
export type StoredItem = ResponsesInputItem & { readonly id: string };

/** The stored form of one Response (POST /v1/responses with `store`, the default). */
export interface StoredResponse {
  readonly v: 1;
  /** The Response object as it was answered (`store: true`). */
  readonly response: { readonly id: string; readonly output: readonly Record<string, unknown>[]; readonly [field: string]: unknown };
  /** This response's own input items, oldest first. */
  readonly input: readonly StoredItem[];
  /**
   * The conversation before them, from the responses it continues (`previous_response_id`): their
   * input and output items, oldest first. `instructions` are not part of it (as OpenAI: a
   * continuation does not inherit them).
   */
  readonly context: readonly StoredItem[];
  /** Digest of the API key that created it (API_KEYS set), else null: other keys are told it does not exist. */
  readonly owner: string | null;
  /** A background response on a shared store: while it runs, its process holds a lease (see ResponseStore.holdLease). */
  readonly leased?: true;
}

/** A conversation (POST /v1/conversations; `conversation` on POST /v1/responses): its items, oldest first. */
export interface StoredConversation {
  readonly v: 1;
  readonly conversation: { readonly id: string; readonly object: 'conversation'; readonly created_at: number; readonly metadata: Readonly<Record<string, string>> };
  readonly items: readonly StoredItem[];
  /** As StoredResponse.owner. */
  readonly owner: string | null;
}

export interface ResponseStoreOptions {
  /** Keyv on the in-process LRU, or on Redis (the cache's connection). */
  readonly keyv: Keyv;
  readonly ttlSeconds: number;
  /** Set on Redis: every call is bounded, and refused while Redis is down. */
  readonly redis: RedisConnection | undefined;
  readonly logger: CacheLogger;
  /** One line for the boot log. */
  readonly description: string;
  /** See AppConfig.responsesStore.backgroundLeaseSeconds (default 30). */
  readonly leaseSeconds?: number;
  /** On Redis: compare-and-set on the same entries (changes from several processes do not overwrite each other), and the leases. */
  readonly atomic?: AtomicEntries;
}

/** DI token of the ResponseStore; null when RESPONSES_STORE_ENABLED=false. */
export const RESPONSE_STORE = Symbol.for('inference-api:response-store');

/**
 * The store the config asks for: on Redis when the app has a connection (REDIS_URL),
 * else an LRU in this process; null when disabled. The Redis side is imported only when used.
 */
export async function createResponseStore(
  config: Pick<AppConfig, 'responsesStore'>,
  redis: RedisConnection | null,
  logger: CacheLogger,
): Promise<ResponseStore | null> {
  const { enabled, ttlSeconds, maxEntries, maxBytes, backgroundLeaseSeconds: leaseSeconds } = config.responsesStore;
  if (!enabled) return null;
  if (redis !== null) {
    const { createRedisStore, RESPONSES_STORE_NAMESPACE } = await import('../cache/redis-store.js');
    const { keyv, atomic } = createRedisStore(
      redis,
      (error) => logger.debug?.(`response store error: ${error instanceof Error ? error.message : String(error)}`),
      RESPONSES_STORE_NAMESPACE,
      // A read that fails must be a 503, not "not found".
      true,
    );
    return new ResponseStore({ keyv, atomic, ttlSeconds, redis, logger, leaseSeconds, description: `stored responses on Redis (shared by every process; kept ${ttlSeconds} s)` });
  }
  return new ResponseStore({
    keyv: boundedMemoryKeyv<StoredResponse | StoredConversation>({
      maxEntries,
      maxBytes,
      sizeOf: (record) => ('conversation' in record ? conversationSize(record) : recordSize(record)),
    }),
    ttlSeconds,
    redis: undefined,
    logger,
    description: `stored responses in memory (at most ${maxEntries} responses and about ${maxBytes} bytes, least recently used dropped first; this process only; kept at most ${ttlSeconds} s)`,
  });
}

/**
 * The approximate memory a record holds in the in-process store: the JSON length of its input items,
 * its Response and its context. A continuation shares the item objects of the responses before it,
 * so a chain is counted more than once while all of it is kept; but once the older records are
 * dropped, the newest alone keeps every earlier item alive, and counting them as its own is what keeps
 * a long chain within RESPONSES_STORE_MAX_BYTES.
 */
export function recordSize(record: StoredResponse): number {
  return JSON.stringify(record.input).length + JSON.stringify(record.response).length + JSON.stringify(record.context).length + 64;
}

/**
 * Who owns what a request stores or reads, with API keys (the key hook checked the key): a named key
 * (API_KEYS_FILE) by its name, so its records stay its own when the key is rotated; a key of API_KEYS
 * by its digest. null without keys.
 */
export function ownerOf(apiKey: ApiKeyRecord | null | undefined): string | null {
  if (!apiKey) return null;
  return apiKey.name === undefined ? apiKey.digest : `name:${apiKey.name}`;
}

/** The approximate memory of a conversation record: the JSON length of its items (they are its own copies). */
export function conversationSize(record: StoredConversation): number {
  return JSON.stringify(record.items).length + JSON.stringify(record.conversation).length + 64;
}

function unavailable(): ApiError {
  return new ApiError(503, 'The response store is unavailable; try again later.', 'service_unavailable', 'store_unavailable');
}

/** How to read one kind of record: its parser, its id, and the field only the other kind has. */
interface RecordKind<T> {
  readonly name: string;
  readonly parse: (raw: unknown) => T | undefined;
  readonly idOf: (record: T) => string;
  readonly otherField: string;
}

const RESPONSE_KIND: RecordKind<StoredResponse> = {
  name: 'stored response',
  parse: (raw) => parseStoredResponse(raw),
  idOf: (record) => record.response.id,
  otherField: 'conversation',
};

const CONVERSATION_KIND: RecordKind<StoredConversation> = {
  name: 'conversation',
  parse: (raw) => parseStoredConversation(raw),
  idOf: (record) => record.conversation.id,
  otherField: 'response',
};

/**
 * Stored responses of the Responses API: what `previous_response_id` continues and
 * `GET /v1/responses/{id}` returns. Keyv on the in-process LRU (one process's responses) or on Redis
 * (every process and host shares them; entries expire after the TTL). A record that cannot be read
 * (garbage under the key) counts as absent; Redis being down is a 503, not a "not found".
 */
export class ResponseStore {
  readonly description: string;
  private readonly keyv: Keyv;
  private readonly ttlMs: number;
  private readonly redis: RedisConnection | undefined;
  private readonly logger: CacheLogger;
  /** The tail of the changes queued per record id (one at a time per record in this process). */
  private readonly locks = new Map<string, Promise<void>>();
  /** How long a background response's lease lasts (see holdLease). */
  readonly leaseMs: number;
  private readonly atomic: AtomicEntries | undefined;

  constructor(options: ResponseStoreOptions) {
    this.keyv = options.keyv;
    this.atomic = options.atomic;
    this.leaseMs = (options.leaseSeconds ?? 30) * 1000;
    this.ttlMs = options.ttlSeconds * 1000;
    this.redis = options.redis;
    this.logger = options.logger;
    this.description = options.description;
  }

  /** True when every process sees the same records (Redis). */
  get shared(): boolean {
    return this.redis !== undefined;
  }

  /** The record of `id` if it exists and `owner` may see it. Throws a 503 ApiError when the store cannot be reached. */
  get(id: string, owner: string | null): Promise<StoredResponse | undefined> {
    return this.read(id, owner, RESPONSE_KIND);
  }

  /** Stores a record under its response's id; false (logged) when the store could not take it. */
  save(record: StoredResponse): Promise<boolean> {
    return this.write(record.response.id, record, 'response');
  }

  /** Deletes `id` if `owner` may see it; false when there was nothing (for this owner) to delete. */
  delete(id: string, owner: string | null): Promise<boolean> {
    return this.serial(id, async () => {
      if ((await this.get(id, owner)) === undefined) return false;
      return this.call(() => this.keyv.delete(id));
    });
  }

  /**
   * Changes a stored response (read, `change`, write) one change at a time per response in this
   * process, and as a compare-and-set on Redis (see update): a background response finishing and a
   * cancel cannot overwrite each other, in one process or across several. `change`
   * returns the new record, or undefined to leave it as it is. Resolves with the record as it was
   * (undefined: none for this owner) and as written (undefined: not written). Throws a 503 ApiError
   * when the store cannot be reached or refuses the write.
   */
  updateResponse(
    id: string,
    owner: string | null,
    change: (record: StoredResponse) => StoredResponse | undefined,
  ): Promise<{ readonly before: StoredResponse | undefined; readonly after: StoredResponse | undefined }> {
    return this.update(id, owner, RESPONSE_KIND, change);
  }

  /**
   * Leases of background responses (shared stores): the process running `id` holds one, renewed
   * while it runs, so that the others can tell a response still running from one whose process died
   * (SIGKILL, OOM, a lost host). A key of its own (`lease:<id>`, expiring by itself after `leaseMs`)
   * rather than a field of the record: renewing it never races with a cancel writing the record.
   * A plain Redis key with a Redis TTL (not a Keyv entry, whose expiry each reader would judge by its
   * own clock): hosts whose clocks differ agree on it.
   * False (logged) when the store could not take it.
   */
  async holdLease(id: string): Promise<boolean> {
    const atomic = this.atomic;
    if (atomic === undefined) return true;
    try {
      await this.call(() => atomic.setFlag(leaseKey(id), this.leaseMs));
      return true;
    } catch (error) {
      this.logger.warn(`renewing the lease of background response ${id} failed: ${error instanceof Error ? error.message : String(error)}`);
      return false;
    }
  }

  /**
   * True while the process running `id` holds its lease (always in a store of one process: a
   * response there runs in the process that reads it). Throws a 503 ApiError when the store cannot
   * be reached.
   */
  async leaseHeld(id: string): Promise<boolean> {
    const atomic = this.atomic;
    if (atomic === undefined) return true;
    return this.call(() => atomic.hasFlag(leaseKey(id)));
  }

  /** Drops the lease of a background response that ended. */
  async releaseLease(id: string): Promise<void> {
    const atomic = this.atomic;
    if (atomic !== undefined) await this.call(() => atomic.deleteFlag(leaseKey(id)));
  }

  /** The conversation `id` if it exists and `owner` may see it. Throws a 503 ApiError when the store cannot be reached. */
  getConversation(id: string, owner: string | null): Promise<StoredConversation | undefined> {
    return this.read(id, owner, CONVERSATION_KIND);
  }

  /** Writes a conversation; false (logged) when the store could not take it. */
  saveConversation(record: StoredConversation): Promise<boolean> {
    return this.write(record.conversation.id, record, 'conversation');
  }

  /** Deletes a conversation, after the changes queued on it (a response finishing cannot bring it back). */
  deleteConversation(id: string, owner: string | null): Promise<boolean> {
    return this.serial(id, async () => {
      if ((await this.getConversation(id, owner)) === undefined) return false;
      return this.call(() => this.keyv.delete(id));
    });
  }

  /** A record of one kind under `id`, for `owner`; the other kind's record under that id reads as absent (not unreadable). */
  private async read<T extends { readonly owner: string | null }>(id: string, owner: string | null, kind: RecordKind<T>): Promise<T | undefined> {
    if (id.startsWith(LEASE_PREFIX)) return undefined;
    return this.recordOf(id, await this.call(() => this.keyv.get<unknown>(id)), owner, kind);
  }

  /** What was stored under `id`, as a record of `kind` for `owner` (see read). */
  private recordOf<T extends { readonly owner: string | null }>(id: string, raw: unknown, owner: string | null, kind: RecordKind<T>): T | undefined {
    if (raw === undefined || raw === null || (isObject(raw) && kind.otherField in raw)) return undefined;
    const record = kind.parse(raw);
    if (record === undefined) {
      this.logger.warn(`ignored an unreadable ${kind.name} (${id})`);
      return undefined;
    }
    if (kind.idOf(record) !== id || record.owner !== owner) return undefined;
    return record;
  }

  private async write(id: string, record: StoredResponse | StoredConversation, what: string): Promise<boolean> {
    try {
      const ok = await this.call(() => this.keyv.set(id, record, this.ttlMs));
      if (ok === false) throw new Error(this.redis ? 'Redis refused the write' : 'larger than the in-process store (RESPONSES_STORE_MAX_BYTES)');
      return true;
    } catch (error) {
      this.logger.warn(`storing ${what} ${id} failed: ${error instanceof Error ? error.message : String(error)}`);
      return false;
    }
  }

  /**
   * Changes a conversation (read, `change`, write) as updateResponse: the responses of one
   * conversation finishing together, in one process or several, do not drop each other's items.
   * Resolves with the new record; undefined when it does not exist.
   * Throws a 503 ApiError when the store cannot be reached or refuses the write.
   */
  async updateConversation(id: string, owner: string | null, change: (record: StoredConversation) => StoredConversation): Promise<StoredConversation | undefined> {
    return (await this.update(id, owner, CONVERSATION_KIND, change)).after;
  }

  /**
   * Read, `change` (undefined: no write), write; serialised per id in this process (see serial). On
   * Redis the write is a compare-and-set: when another process wrote the record in between, it is
   * read again and `change` applied to what that process wrote. A refused write is a 503.
   */
  private update<T extends StoredResponse | StoredConversation>(
    id: string,
    owner: string | null,
    kind: RecordKind<T>,
    change: (record: T) => T | undefined,
  ): Promise<{ readonly before: T | undefined; readonly after: T | undefined }> {
    return this.serial(id, async () => {
      const atomic = this.atomic;
      if (atomic === undefined) {
        const before = await this.read(id, owner, kind);
        const after = before === undefined ? undefined : change(before);
        if (after !== undefined && !(await this.write(id, after, kind.name))) throw unavailable();
        return { before, after };
      }
      for (let attempt = 0; attempt < MAX_CONFLICTS; attempt++) {
        const { value, token } = await this.call(() => atomic.read(id));
        const before = this.recordOf(id, value, owner, kind);
        const after = before === undefined ? undefined : change(before);
        if (after === undefined || (await this.call(() => atomic.compareAndSet(id, token, after, this.ttlMs)))) return { before, after };
      }
      this.logger.warn(`${kind.name} ${id} kept changing under ${MAX_CONFLICTS} writes in a row; gave up`);
      throw unavailable();
    });
  }

  /** Runs `work` once the work queued before it on `id` (in this process) has settled. */
  private serial<T>(id: string, work: () => Promise<T>): Promise<T> {
    const previous = this.locks.get(id) ?? Promise.resolve();
    const next = previous.then(work);
    const tail = next.then(
      () => undefined,
      () => undefined,
    );
    this.locks.set(id, tail);
    void tail.then(() => {
      if (this.locks.get(id) === tail) this.locks.delete(id);
    });
    return next;
  }

  private async call<T>(operation: () => Promise<T>): Promise<T> {
    if (this.redis === undefined) return operation();
    try {
      return await this.redis.call(operation);
    } catch {
      throw unavailable();
    }
  }
}

/** Compare-and-set attempts of one change before it gives up (each lost to another process's write). */
const MAX_CONFLICTS = 16;

/** Leases live beside the records; no record id starts with it (GET /v1/responses/lease:… is a 404). */
const LEASE_PREFIX = 'lease:';
const leaseKey = (id: string): string => LEASE_PREFIX + id;

const isObject = (value: unknown): value is Record<string, unknown> => value !== null && typeof value === 'object' && !Array.isArray(value);

const hasId = (item: unknown): boolean => isObject(item) && typeof item['id'] === 'string';

/** A stored record, checked (Redis holds JSON another version or a person may have written); undefined when malformed. */
export function parseStoredResponse(raw: unknown): StoredResponse | undefined {
  if (!isObject(raw) || raw['v'] !== 1) return undefined;
  const { response, input, context, owner } = raw;
  if (!isObject(response) || typeof response['id'] !== 'string' || !Array.isArray(response['output'])) return undefined;
  if (!response['output'].every(hasId)) return undefined;
  if (!Array.isArray(input) || !input.every(hasId)) return undefined;
  if (!Array.isArray(context) || !context.every(hasId)) return undefined;
  if (owner !== null && typeof owner !== 'string') return undefined;
  return raw as unknown as StoredResponse;
}

/** A stored conversation, checked; undefined when malformed. */
export function parseStoredConversation(raw: unknown): StoredConversation | undefined {
  if (!isObject(raw) || raw['v'] !== 1) return undefined;
  const { conversation, items, owner } = raw;
  if (!isObject(conversation) || typeof conversation['id'] !== 'string' || conversation['object'] !== 'conversation') return undefined;
  if (!isObject(conversation['metadata'])) return undefined;
  if (!Array.isArray(items) || !items.every(hasId)) return undefined;
  if (owner !== null && typeof owner !== 'string') return undefined;
  return raw as unknown as StoredConversation;
}
