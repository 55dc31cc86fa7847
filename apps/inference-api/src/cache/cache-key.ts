import { hash } from 'node:crypto';
import type { ChatRequest } from '@infer/model-providers';
import type { EmbeddingJob, InferenceJob } from '../openai/inference.service.js';

/** Bump when the canonical form or the entry format changes: old entries then simply stop matching. */
export const CACHE_KEY_VERSION = 1;

/**
 * Pass-through (`extra`) parameters that never change the generated text, so they do not split
 * the cache. Everything else an upstream might interpret (logit_bias, response_format, ...)
 * is part of the key.
 */
const OUTPUT_NEUTRAL_EXTRA: ReadonlySet<string> = new Set(['user', 'metadata', 'store', 'service_tier']);

/**
 * The canonical request: every input that changes the output, with OpenAI's defaults made explicit
 * (temperature 1, top_p 1, penalties 0, no stop, no seed) so that `{}` and `{"temperature":1}` share
 * an entry. Objects are built in a fixed key order (JSON.stringify keeps insertion order), and the
 * free-form `extra` parameters are serialised with sorted keys. The InferenceJob is already
 * normalised (n is 1, `stop: "x"` is `["x"]`, `max_completion_tokens` and `max_tokens` are one
 * field, content parts are joined, /v1/completions has its explicit default of 16 tokens).
 *
 * `route` is the kind of generation (chat | completion): an entry holds the generated text, not a
 * response body, so GET /predict and the identical POST /v1/completions share entries.
 */
export function canonicalRequest(job: InferenceJob, namespace: string | null): string {
  // Written out by hand rather than JSON.stringify of a fresh object: the same text (specs compare
  // both forms), without the intermediate objects, ~3x faster. It runs for every cacheable request.
  const r = job.request;
  let input: string;
  if (job.kind === 'chat') {
    input = '[';
    const messages = job.request.messages;
    for (let i = 0; i < messages.length; i++) {
      const m = messages[i] as (typeof messages)[number];
      if (i > 0) input += ',';
      input += `{"role":${q(m.role)},"content":${q(m.content)},"name":${m.name === undefined ? 'null' : q(m.name)}`;
      // Tool fields only when present: the keys of requests without tools stay what they were.
      if (m.toolCalls !== undefined) input += `,"tool_calls":${q(m.toolCalls.map((c) => [c.id, c.name, c.arguments]))}`;
      if (m.toolCallId !== undefined) input += `,"tool_call_id":${q(m.toolCallId)}`;
      input += '}';
    }
    input += ']';
  } else {
    input = q(job.request.prompt);
  }
  let stop: readonly string[] = r.stop ?? [];
  if (stop.length > 1) stop = [...stop].sort();
  return (
    `{"v":${CACHE_KEY_VERSION},"ns":${namespace === null ? 'null' : q(namespace)},"route":"${job.kind}","model":${q(job.model)},` +
    `"input":${input},"max_tokens":${num(r.maxTokens, null)},"temperature":${num(r.temperature, 1)},"top_p":${num(r.topP, 1)},` +
    `"seed":${num(r.seed, null)},"stop":${stop.length === 0 ? '[]' : q(stop)},"presence_penalty":${num(r.presencePenalty, 0)},` +
    `"frequency_penalty":${num(r.frequencyPenalty, 0)},"extra":${r.extra === undefined ? 'null' : q(canonicalExtra(r.extra))}` +
    (job.kind === 'chat' ? canonicalTools(job.request) : '') +
    (job.choice === undefined ? '' : `,"choice":${job.choice}`) +
    // Only when asked for: the keys of requests without logprobs stay what they were.
    (r.logprobs === undefined ? '' : `,"logprobs":${r.logprobs}`) +
    '}'
  );
}

/**
 * The tool fields of a chat request, only when it has tools (so the keys of requests without tools
 * stay what they were). Tool order is kept (it can change what the model calls); keys inside are sorted.
 */
function canonicalTools(r: ChatRequest): string {
  if (r.tools === undefined) return '';
  return `,"tools":${q(sortKeys(r.tools))},"tool_choice":${q(r.toolChoice ?? 'auto')},"parallel_tool_calls":${String(r.parallelToolCalls ?? true)}`;
}

const q = JSON.stringify;

/** A JSON number (numbers here passed schema validation: finite), or the default when absent. */
function num(value: number | undefined, fallback: number | null): string {
  return String(value ?? fallback);
}

/** sha256 of the canonical request, base64url (43 chars). */
export function cacheKey(job: InferenceJob, namespace: string | null): string {
  // One-shot crypto.hash (Node >= 20.12): no Hash object, about half the cost of createHash().update().digest().
  return hash('sha256', canonicalRequest(job, namespace), 'base64url');
}

/**
 * The key of an embeddings request: the model, the inputs, `dimensions` and the output-changing
 * `extra` fields (e.g. an upstream's `input_type`). `encoding_format` is not part of it: the entry
 * keeps the vectors, and each answer encodes them as asked.
 */
export function embeddingsCacheKey(job: EmbeddingJob, namespace: string | null): string {
  const r = job.request;
  const canonical =
    `{"v":${CACHE_KEY_VERSION},"ns":${namespace === null ? 'null' : q(namespace)},"route":"embeddings","model":${q(job.model)},` +
    `"input":${q(r.input)},"dimensions":${num(r.dimensions, null)},"extra":${r.extra === undefined ? 'null' : q(canonicalExtra(r.extra))}}`;
  return hash('sha256', canonical, 'base64url');
}

function canonicalExtra(extra: Readonly<Record<string, unknown>>): Record<string, unknown> | null {
  let out: Record<string, unknown> | null = null;
  for (const key of Object.keys(extra).sort()) {
    const value = extra[key];
    if (value === undefined || value === null || OUTPUT_NEUTRAL_EXTRA.has(key)) continue;
    (out ??= {})[key] = sortKeys(value);
  }
  return out;
}

/** A deep copy of plain JSON data with object keys in sorted order. */
export function sortKeys(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(sortKeys);
  if (value === null || typeof value !== 'object') return value;
  const out: Record<string, unknown> = {};
  const source = value as Record<string, unknown>;
  for (const key of Object.keys(source).sort()) {
    if (source[key] !== undefined) out[key] = sortKeys(source[key]);
  }
  return out;
}
