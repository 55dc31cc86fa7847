import type { ModelRouter } from '@infer/model-providers';
import { describe, expect, it } from 'vitest';
import type { ModelCatalog } from '../models/model-catalog.js';
import { InferenceService } from '../openai/inference.service.js';
import type { ChatCompletionBody, CompletionBody } from '../openai/openai.schemas.js';
import { cacheKey, canonicalRequest, sortKeys } from './cache-key.js';

const inference = new InferenceService(
  { capabilitiesOf: () => ({ chat: true, completion: true, streaming: true, embeddings: false, tools: true }) } as unknown as ModelRouter,
  { get: (id: string) => ({ id }), resolve: (id: string) => id } as unknown as ModelCatalog,
);
const chat = (body: Partial<ChatCompletionBody> & Record<string, unknown>) =>
  inference.chatJob({ model: 'm', messages: [{ role: 'user', content: 'hi' }], ...body } as ChatCompletionBody);
const completion = (body: Partial<CompletionBody> & Record<string, unknown>) =>
  inference.completionJob({ model: 'm', prompt: 'hi', ...body } as CompletionBody);

/** The canonical form as plain JSON.stringify of an object (the definition canonicalRequest writes out by hand). */
function reference(job: ReturnType<typeof chat>, ns: string | null): string {
  const r = job.request;
  const input =
    job.kind === 'chat'
      ? job.request.messages.map((m) => ({
          role: m.role,
          content: m.content,
          name: m.name ?? null,
          ...(m.toolCalls ? { tool_calls: m.toolCalls.map((c) => [c.id, c.name, c.arguments]) } : {}),
          ...(m.toolCallId ? { tool_call_id: m.toolCallId } : {}),
        }))
      : job.request.prompt;
  const tools =
    job.kind === 'chat' && job.request.tools
      ? { tools: sortKeys(job.request.tools), tool_choice: job.request.toolChoice ?? 'auto', parallel_tool_calls: job.request.parallelToolCalls ?? true }
      : {};
  const stop = [...(r.stop ?? [])].sort();
  const extra = r.extra === undefined ? null : (sortKeys(Object.fromEntries(Object.entries(r.extra).filter(([k, v]) => v != null && !['user', 'metadata', 'store', 'service_tier'].includes(k)))) as object);
  return JSON.stringify({
    v: 1, ns, route: job.kind, model: job.model, input, max_tokens: r.maxTokens ?? null, temperature: r.temperature ?? 1, top_p: r.topP ?? 1,
    seed: r.seed ?? null, stop, presence_penalty: r.presencePenalty ?? 0, frequency_penalty: r.frequencyPenalty ?? 0,
    extra: extra && Object.keys(extra).length > 0 ? extra : null,
    ...tools,
  });
}

const TOOL = { type: 'function' as const, function: { name: 'f', description: 'd', parameters: { type: 'object', properties: { b: {}, a: {} } } } };
const TOOL_HISTORY: ChatCompletionBody['messages'] = [
  { role: 'user', content: 'hi' },
  { role: 'assistant', content: null, tool_calls: [{ id: 'c1', type: 'function', function: { name: 'f', arguments: '{}' } }] },
  { role: 'tool', content: '{"t":21}', tool_call_id: 'c1' },
];

describe('cache key', () => {
  it('writes the canonical form exactly as JSON.stringify would (escaping, numbers, order)', () => {
    const jobs = [
      chat({}),
      chat({ messages: [{ role: 'system', content: 'be "terse"\n\u2028 é 😀' }, { role: 'user', content: 'x', name: 'bob' }], temperature: 0.7, top_p: 0.25, seed: -3, max_tokens: 1e3 }),
      chat({ stop: ['b', 'a\\'], presence_penalty: -0.5, frequency_penalty: 1.5, logit_bias: { '2': 1, '1': -1 }, user: 'u' }),
      completion({ prompt: ['once "upon"'], stop: 'x', response_format: { type: 'json_object' } }),
      chat({ tools: [TOOL, { type: 'function', function: { name: 'g' } }], tool_choice: { type: 'function', function: { name: 'g' } }, parallel_tool_calls: false }),
      chat({ messages: TOOL_HISTORY, tools: [TOOL] }),
    ];
    for (const job of jobs) {
      for (const ns of [null, 'key:sk-"1"']) expect(canonicalRequest(job, ns)).toBe(reference(job, ns));
    }
  });

  it('is a sha256 in base64url', () => {
    expect(cacheKey(chat({}), null)).toMatch(/^[A-Za-z0-9_-]{43}$/);
  });

  it('does not split on defaults made explicit', () => {
    const base = cacheKey(chat({}), null);
    expect(cacheKey(chat({ n: 1 }), null)).toBe(base);
    expect(cacheKey(chat({ temperature: 1, top_p: 1, presence_penalty: 0, frequency_penalty: 0 }), null)).toBe(base);
    expect(cacheKey(chat({ temperature: null, seed: null, stop: null, stop_options: undefined } as never), null)).toBe(base);
    expect(cacheKey(chat({ stream: true, stream_options: { include_usage: true } }), null)).toBe(base);
    expect(cacheKey(chat({ stop: [] }), null)).toBe(base);
    expect(cacheKey(chat({ user: 'alice', metadata: { a: 1 } }), null)).toBe(base);
    expect(cacheKey(completion({}), null)).toBe(cacheKey(completion({ max_tokens: 16 }), null));
  });

  it('normalises equivalent spellings', () => {
    expect(cacheKey(chat({ stop: 'x' }), null)).toBe(cacheKey(chat({ stop: ['x'] }), null));
    expect(cacheKey(chat({ stop: ['a', 'b'] }), null)).toBe(cacheKey(chat({ stop: ['b', 'a'] }), null));
    expect(cacheKey(chat({ max_tokens: 5 }), null)).toBe(cacheKey(chat({ max_completion_tokens: 5 }), null));
    expect(cacheKey(chat({ messages: [{ role: 'user', content: [{ type: 'text', text: 'h' }, { type: 'text', text: 'i' }] }] } as never), null)).toBe(
      cacheKey(chat({}), null),
    );
    expect(cacheKey(chat({ logit_bias: { b: 1, a: 2 } }), null)).toBe(cacheKey(chat({ logit_bias: { a: 2, b: 1 } }), null));
    expect(cacheKey(chat({ tools: [TOOL], tool_choice: 'auto', parallel_tool_calls: true }), null)).toBe(cacheKey(chat({ tools: [TOOL] }), null));
    expect(cacheKey(chat({ tools: [], tool_choice: 'none' }), null)).toBe(cacheKey(chat({}), null));
  });

  it('changes with every input that changes the output', () => {
    const base = cacheKey(chat({}), null);
    const variants = [
      chat({ model: 'other' }),
      chat({ messages: [{ role: 'user', content: 'hi!' }] }),
      chat({ messages: [{ role: 'system', content: 'hi' }] }),
      chat({ messages: [{ role: 'user', content: 'hi', name: 'bob' }] }),
      chat({ temperature: 0 }),
      chat({ top_p: 0.5 }),
      chat({ seed: 1 }),
      chat({ max_tokens: 7 }),
      chat({ stop: ['\n'] }),
      chat({ presence_penalty: 0.1 }),
      chat({ frequency_penalty: 0.1 }),
      chat({ logit_bias: { '1': 5 } }),
      chat({ response_format: { type: 'json_object' } }),
      chat({ tools: [TOOL] }),
      chat({ tools: [TOOL, { type: 'function', function: { name: 'g' } }] }),
      chat({ tools: [{ type: 'function', function: { name: 'g' } }, TOOL] }),
      chat({ tools: [TOOL], tool_choice: 'required' }),
      chat({ tools: [TOOL], parallel_tool_calls: false }),
      chat({ tools: [{ type: 'function', function: { ...TOOL.function, description: 'other' } }] }),
      chat({ messages: TOOL_HISTORY, tools: [TOOL] }),
      chat({ messages: TOOL_HISTORY.map((m) => (m.role === 'tool' ? { ...m, content: '{"t":22}' } : m)), tools: [TOOL] }),
      chat({ messages: TOOL_HISTORY.map((m) => (m.role === 'tool' ? { ...m, tool_call_id: 'c2' } : m)), tools: [TOOL] }),
    ];
    const keys = new Set(variants.map((job) => cacheKey(job, null)));
    expect(keys.size).toBe(variants.length);
    expect(keys.has(base)).toBe(false);
  });

  it('separates routes and namespaces', () => {
    expect(cacheKey(completion({ max_tokens: 5 }), null)).not.toBe(cacheKey(chat({ max_tokens: 5 }), null));
    expect(cacheKey(chat({}), 'tenant:a')).not.toBe(cacheKey(chat({}), 'tenant:b'));
    expect(cacheKey(chat({}), 'tenant:a')).not.toBe(cacheKey(chat({}), null));
  });

  it('is canonical JSON in a stable order', () => {
    const text = canonicalRequest(chat({ seed: 3, temperature: 0 }), null);
    expect(Object.keys(JSON.parse(text) as object)).toEqual([
      'v', 'ns', 'route', 'model', 'input', 'max_tokens', 'temperature', 'top_p', 'seed', 'stop', 'presence_penalty', 'frequency_penalty', 'extra',
    ]);
    expect(JSON.stringify(sortKeys({ b: [{ d: 1, c: 2 }], a: null }))).toBe('{"a":null,"b":[{"c":2,"d":1}]}');
  });
});
