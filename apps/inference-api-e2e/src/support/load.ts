/** Bounded load generation and request helpers for the scale-out suites. */

export interface LoadResult {
  readonly total: number;
  readonly ok: number;
  readonly failed: number;
  /** The first failures' messages (at most 20). */
  readonly failures: readonly string[];
  readonly durationMs: number;
}

export interface LoadOptions {
  readonly concurrency: number;
  /** Stop starting requests after this long. */
  readonly durationMs: number;
  /** Never start more than this many requests. */
  readonly maxRequests: number;
  /** Stop starting requests once this returns true (checked before each request). */
  readonly stop?: () => boolean;
  /** One request; throws (or rejects) when it failed. */
  readonly request: (index: number) => Promise<unknown>;
}

/** Runs `request` from `concurrency` workers until the time or count bound; counts failures. */
export async function runBoundedLoad(options: LoadOptions): Promise<LoadResult> {
  const started = Date.now();
  const end = started + options.durationMs;
  let next = 0;
  let ok = 0;
  const failures: string[] = [];
  let failed = 0;
  const worker = async () => {
    while (Date.now() < end && next < options.maxRequests && !options.stop?.()) {
      const index = next++;
      try {
        await options.request(index);
        ok++;
      } catch (error) {
        failed++;
        if (failures.length < 20) failures.push(`#${index}: ${error instanceof Error ? error.message : String(error)}`);
      }
    }
  };
  await Promise.all(Array.from({ length: options.concurrency }, worker));
  return { total: ok + failed, ok, failed, failures, durationMs: Date.now() - started };
}

export function fakeModelsYaml(upstreamUrl: string, model = 'm', options: { upstreamModel?: string; timeoutMs?: number } = {}): string {
  const timeout = options.timeoutMs === undefined ? '' : `        timeoutMs: ${options.timeoutMs}\n`;
  return `models:\n  - name: ${model}\n    deployments:\n      - provider: openai-compatible\n        baseUrl: ${upstreamUrl}\n        model: ${options.upstreamModel ?? 'fake'}\n${timeout}`;
}

/** One non-streamed chat completion; throws unless it is a 200 with a completion. Returns x-served-by. */
export async function chatOnce(baseUrl: string, content: string, model = 'm'): Promise<string> {
  const res = await fetch(`${baseUrl}/v1/chat/completions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ model, messages: [{ role: 'user', content }] }),
    signal: AbortSignal.timeout(30_000),
  });
  const text = await res.text();
  if (res.status !== 200) throw new Error(`status ${res.status}: ${text.slice(0, 300)}`);
  const body = JSON.parse(text) as { choices?: Array<{ message?: { content?: string } }> };
  if (typeof body.choices?.[0]?.message?.content !== 'string') throw new Error(`no completion in ${text.slice(0, 300)}`);
  return res.headers.get('x-served-by') ?? '';
}

export interface StreamOutcome {
  readonly status: number;
  readonly servedBy: string;
  /** Content deltas received. */
  readonly deltas: number;
  readonly done: boolean;
  /** ms from the request to the first content delta, and to the end of the response. */
  readonly firstDeltaMs: number;
  readonly endMs: number;
  /** Distinct network reads that carried data (an unbuffered stream arrives in many). */
  readonly reads: number;
  readonly text: string;
}

/** A streamed chat completion, read chunk by chunk with timings. */
export async function chatStream(baseUrl: string, content: string, model = 'm'): Promise<StreamOutcome> {
  const started = performance.now();
  const res = await fetch(`${baseUrl}/v1/chat/completions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ model, stream: true, messages: [{ role: 'user', content }] }),
    signal: AbortSignal.timeout(60_000),
  });
  const servedBy = res.headers.get('x-served-by') ?? '';
  if (!res.body) throw new Error(`status ${res.status}: no body`);
  const decoder = new TextDecoder();
  let text = '';
  let reads = 0;
  let firstDeltaMs = -1;
  let deltas = 0;
  let buffer = '';
  for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
    reads++;
    const part = decoder.decode(chunk, { stream: true });
    text += part;
    buffer += part;
    let end: number;
    while ((end = buffer.indexOf('\n\n')) >= 0) {
      const event = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      if (!event.startsWith('data: ') || event === 'data: [DONE]') continue;
      const data = JSON.parse(event.slice(6)) as { choices?: Array<{ delta?: { content?: string } }> };
      if (data.choices?.[0]?.delta?.content) {
        deltas++;
        if (firstDeltaMs < 0) firstDeltaMs = performance.now() - started;
      }
    }
  }
  return {
    status: res.status,
    servedBy,
    deltas,
    done: text.includes('data: [DONE]'),
    firstDeltaMs,
    endMs: performance.now() - started,
    reads,
    text,
  };
}

/** A complete stream, or an Error saying how it was cut. */
export async function chatStreamComplete(baseUrl: string, content: string, expectedDeltas: number, model = 'm'): Promise<StreamOutcome> {
  const outcome = await chatStream(baseUrl, content, model);
  if (outcome.status !== 200) throw new Error(`stream status ${outcome.status}: ${outcome.text.slice(0, 300)}`);
  if (!outcome.done || outcome.deltas !== expectedDeltas) {
    throw new Error(`cut stream from ${outcome.servedBy}: ${outcome.deltas}/${expectedDeltas} deltas, [DONE] ${outcome.done}`);
  }
  return outcome;
}

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
