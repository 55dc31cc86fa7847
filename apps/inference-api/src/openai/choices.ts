import type { StreamPart } from '@infer/model-providers';
import type { InferenceJob } from './inference.service.js';
import type { ChoicePart } from './sse-writer.js';

/**
 * `n` > 1: each choice is its own generation of the same request (the providers' contract has one
 * result per call), run concurrently.
 * - With a `seed`, choice i samples with `seed + i`: reproducible, different choices, and choice 0
 *   is what the same request with n = 1 answers.
 * - Greedy requests (`temperature: 0`) get the same job for every choice: the response cache
 *   coalesces them into one upstream call (the choices are identical anyway, as on OpenAI).
 * - Other requests (sampling without a seed) mark choices after the first with their index, which
 *   enters the cache key: with CACHE_NONDETERMINISTIC they are separate entries, not one sample n times.
 */
export function choiceJobs(job: InferenceJob, n: number): InferenceJob[] {
  const jobs: InferenceJob[] = [job];
  const { seed, temperature } = job.request;
  for (let i = 1; i < n; i++) {
    if (seed !== undefined) jobs.push({ ...job, request: { ...job.request, seed: seed + i } } as InferenceJob);
    else if (temperature === 0) jobs.push(job);
    else jobs.push({ ...job, choice: i });
  }
  return jobs;
}

type Pulled =
  | { readonly index: number; readonly failed: false; readonly result: IteratorResult<StreamPart> }
  | { readonly index: number; readonly failed: true; readonly error: unknown };

/**
 * The parts of several streams as they come, each marked with its stream's index (`choice`). An
 * error in one stream ends the merge with that error; the merge ending early (error, or the
 * consumer leaving) stops the other streams.
 */
export async function* mergeChoices(streams: readonly AsyncIterable<StreamPart>[]): AsyncGenerator<ChoicePart> {
  const iterators = streams.map((stream) => stream[Symbol.asyncIterator]());
  const pending = new Map<number, Promise<Pulled>>();
  const pull = (index: number): void => {
    const iterator = iterators[index] as AsyncIterator<StreamPart>;
    // Never rejects: a failure is a value, so the pulls still pending when the merge ends are not unhandled rejections.
    pending.set(
      index,
      iterator.next().then(
        (result): Pulled => ({ index, failed: false, result }),
        (error: unknown): Pulled => ({ index, failed: true, error }),
      ),
    );
  };
  for (let i = 0; i < iterators.length; i++) pull(i);
  let finished = false;
  try {
    while (pending.size > 0) {
      const pulled = await Promise.race(pending.values());
      if (pulled.failed) {
        pending.delete(pulled.index);
        throw pulled.error;
      }
      if (pulled.result.done) {
        pending.delete(pulled.index);
        continue;
      }
      pull(pulled.index);
      yield { ...pulled.result.value, choice: pulled.index };
    }
    finished = true;
  } finally {
    if (!finished) {
      for (const index of pending.keys()) void (iterators[index] as AsyncIterator<StreamPart>).return?.()?.catch?.(() => undefined);
    }
  }
}
