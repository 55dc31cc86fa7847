/**
 * Works around a data race in node-llama-cpp 3.21.1 that makes parallel sequences of one context
 * swap their logits now and then.
 *
 * What happens: after a batched decode of several sequences, llama.cpp may hold the outputs in a
 * different order than the batch and fixes that lazily: the first `llama_get_logits[_ith]()` call
 * swaps the rows in place (`output_reorder()`), then clears its list of swaps. node-llama-cpp
 * samples each sequence's next token in its own AsyncWorker (`sampleToken`), so these calls run
 * concurrently on the libuv pool, and two of them can both apply the swaps: a sequence then
 * samples from another sequence's logits. Observed here with 8 identical greedy requests on
 * 8 sequences: a different text in ~30% of 300-token runs (a token duplicated in one reply and
 * missing from another); none with UV_THREADPOOL_SIZE=1, and none with this guard.
 *
 * The guard: after each `decodeBatch`, the first `sampleToken` runs alone (it performs the
 * reorder); the others of that batch start once it is done, and then run in parallel as before.
 * It patches the context's native handle (`_ctx`, internal API); when the shape is not the expected
 * one (another node-llama-cpp version) it does nothing and returns false.
 */
import type { LlamaContext } from 'node-llama-cpp';

interface NativeContextMethods {
  decodeBatch(...args: unknown[]): Promise<unknown>;
  sampleToken(...args: unknown[]): Promise<unknown>;
}

const guarded = new WeakSet<object>();

export function guardLogitsReorderRace(context: LlamaContext): boolean {
  const native = (context as unknown as { _ctx?: unknown })._ctx;
  if (!isNativeContext(native)) return false;
  if (guarded.has(native)) return true;

  const decodeBatch = native.decodeBatch.bind(native);
  const sampleToken = native.sampleToken.bind(native);
  /** The first sampling after the latest decode; undefined once it settled (the reorder is done). */
  let first: Promise<unknown> | undefined;
  let reorderPending = false;

  const guardedDecodeBatch = (...args: unknown[]): Promise<unknown> => {
    reorderPending = true;
    first = undefined;
    return decodeBatch(...args);
  };
  const guardedSampleToken = (...args: unknown[]): Promise<unknown> => {
    if (!reorderPending) return sampleToken(...args);
    if (first) return first.then(() => sampleToken(...args));
    const result = sampleToken(...args);
    const settled = result.then(
      () => undefined,
      () => undefined,
    );
    first = settled;
    void settled.then(() => {
      if (first === settled) {
        first = undefined;
        reorderPending = false;
      }
    });
    return result;
  };
  try {
    // N-API methods live on the prototype as read-only properties: shadow them with own properties.
    Object.defineProperty(native, 'decodeBatch', { value: guardedDecodeBatch, configurable: true, writable: true });
    Object.defineProperty(native, 'sampleToken', { value: guardedSampleToken, configurable: true, writable: true });
  } catch {
    return false;
  }
  guarded.add(native);
  return true;
}

function isNativeContext(value: unknown): value is NativeContextMethods {
  if (typeof value !== 'object' || value === null) return false;
  const candidate = value as Partial<Record<keyof NativeContextMethods, unknown>>;
  return typeof candidate.decodeBatch === 'function' && typeof candidate.sampleToken === 'function';
}
