import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ModelProviderError } from '../../contract/errors.js';
import type { ChatMessage, CompletionRequest, GenerationResult, StreamPart } from '../../contract/model-provider.js';
import { writeTinyLlamaGguf } from '../../gguf/tiny-llama.js';
import { silentLogger, type ProviderContext } from '../../registry/provider-definition.js';
import { ModelProviderRegistry } from '../../registry/provider-registry.js';
import { LLAMA_CPP_CHAT_WRAPPERS, llamaCppProviderDefinition, LlamaCppProvider, type LlamaCppProviderOptions } from './index.js';

let dir: string;
const providers: LlamaCppProvider[] = [];

function context(overrides: Partial<ProviderContext> = {}): ProviderContext {
  return { modelName: 'tiny', env: {}, baseDir: dir, logger: silentLogger, ...overrides };
}

async function provider(options: Partial<LlamaCppProviderOptions> = {}): Promise<LlamaCppProvider> {
  // 'jinjaTemplate': skip node-llama-cpp's ~1 s template matching ('auto') in every provider of this file.
  const p = new LlamaCppProvider({ modelPath: 'tiny.gguf', chatWrapper: 'jinjaTemplate', ...options }, context());
  providers.push(p);
  await p.init();
  return p;
}

async function collect(stream: AsyncIterable<StreamPart>): Promise<{ text: string; deltas: number; finish: Extract<StreamPart, { type: 'finish' }> }> {
  let text = '';
  let deltas = 0;
  let finish: Extract<StreamPart, { type: 'finish' }> | undefined;
  for await (const part of stream) {
    if (part.type === 'delta') {
      expect(finish, 'no delta after the finish part').toBeUndefined();
      text += part.text;
      deltas += 1;
    } else if (part.type === 'finish') {
      finish = part;
    } else {
      expect.fail(`a llama.cpp stream yielded a ${part.type} part`);
    }
  }
  if (!finish) throw new Error('the stream ended without a finish part');
  return { text, deltas, finish };
}

async function rejection(promise: Promise<unknown>): Promise<ModelProviderError> {
  const error = await promise.then(
    () => {
      throw new Error('expected a rejection');
    },
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(ModelProviderError);
  return error as ModelProviderError;
}

const messages: readonly ChatMessage[] = [
  { role: 'system', content: 'You are terse.' },
  { role: 'user', content: 'Tell me about lighthouses.' },
];

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'llama-cpp-provider-'));
  await writeTinyLlamaGguf(join(dir, 'tiny.gguf'));
});

afterAll(async () => {
  await Promise.all(providers.map((p) => p.close()));
  await rm(dir, { recursive: true, force: true });
});

describe('llama-cpp provider: generation', () => {
  let p: LlamaCppProvider;
  beforeAll(async () => {
    p = await provider({ sequences: 4 });
  });

  it('declares its capabilities and is healthy once loaded', async () => {
    expect(p.kind).toBe('llama-cpp');
    expect(p.label).toBe('llama-cpp(tiny.gguf, tiny)');
    expect(p.capabilities).toEqual({ chat: true, completion: true, streaming: true, embeddings: true, logprobs: false });
    const health = await p.health();
    expect(health.healthy).toBe(true);
    expect(health.detail).toMatch(/tiny\.gguf loaded; 0\/4 sequences busy/);
  });

  it('chat: stream and non-stream agree at temperature 0, and counts real tokens', async () => {
    const whole = await p.chat({ messages, maxTokens: 50, temperature: 0 });
    const streamed = await collect(p.streamChat({ messages, maxTokens: 50, temperature: 0 }));
    expect(whole.text).toMatch(/^[\x20-\x7e]{50}$/);
    expect(streamed.text).toBe(whole.text);
    expect(streamed.deltas).toBeGreaterThan(1);
    expect(streamed.finish.finishReason).toBe(whole.finishReason);
    // (The second call reuses the first one's prompt: only cachedPromptTokens differs.)
    expect(streamed.finish.usage).toMatchObject({ promptTokens: whole.usage.promptTokens, completionTokens: whole.usage.completionTokens });
    // The template renders `<|system|>\n…</s>\n<|user|>\n…</s>\n<|assistant|>\n` (byte tokens, BOS, and one
    // SentencePiece space prefix per text piece): more tokens than characters of content, fewer than 2×.
    const content = messages.reduce((n, m) => n + m.content.length, 0);
    expect(whole.usage.promptTokens).toBeGreaterThan(content + 30);
    expect(whole.usage.promptTokens).toBeLessThan(content + 60);
  });

  it('completion: stream and non-stream agree at temperature 0; the prompt is BOS + one token per byte', async () => {
    const whole = await p.complete({ prompt: 'abc', maxTokens: 30, temperature: 0 });
    const streamed = await collect(p.streamComplete({ prompt: 'abc', maxTokens: 30, temperature: 0 }));
    expect(streamed.text).toBe(whole.text);
    expect(whole.usage).toMatchObject({ promptTokens: 4, completionTokens: 30 });
    expect(streamed.finish).toMatchObject({ type: 'finish', finishReason: 'length', usage: { promptTokens: 4, completionTokens: 30 } });
    expect((await p.complete({ prompt: 'héllo wörld', maxTokens: 1, temperature: 0 })).usage.promptTokens).toBe(1 + 13);
  });

  it("maxTokens: finishReason 'length' with exactly maxTokens tokens (temperature 0 never picks EOS)", async () => {
    for (const maxTokens of [1, 2, 17, 100]) {
      const chat = await p.chat({ messages, maxTokens, temperature: 0 });
      expect(chat.finishReason).toBe('length');
      expect(chat.usage.completionTokens).toBe(maxTokens);
      expect(chat.text.length).toBe(maxTokens); // printable ASCII: one character per token
      const completion = await p.complete({ prompt: 'Once', maxTokens, temperature: 0 });
      expect(completion).toMatchObject({ finishReason: 'length', usage: { completionTokens: maxTokens } });
    }
    // The default maxTokens applies when none is given.
    const defaulted = await p.complete({ prompt: 'Once', temperature: 0 });
    expect(defaulted.usage.completionTokens).toBe(256);
  });

  it("sampling: an EOS ends the text with finishReason 'stop' and counts as a completion token", async () => {
    // At temperature 1 the noise model emits EOS about once in a thousand tokens: look for a seed that does.
    let found: GenerationResult | undefined;
    for (let seed = 0; seed < 400 && !found; seed += 8) {
      const batch = await Promise.all(
        Array.from({ length: 8 }, (_, i) => p.complete({ prompt: 'Hi', maxTokens: 60, temperature: 1, seed: seed + i })),
      );
      for (const result of batch) {
        expect(result.usage.completionTokens).toBeLessThanOrEqual(60);
        if (result.finishReason === 'length') expect(result.usage.completionTokens).toBe(60);
        else found ??= result;
      }
    }
    expect(found, 'some seed produced an EOS').toBeDefined();
    expect(found?.finishReason).toBe('stop');
    expect(found?.usage.completionTokens).toBe((found?.text.length ?? 0) + 1);
  });

  it('seed: the same seed gives the same text, without a seed two calls differ', async () => {
    const request = { prompt: 'The sea', maxTokens: 40, temperature: 1.2 } as const;
    const [a, b] = await Promise.all([p.complete({ ...request, seed: 11 }), p.complete({ ...request, seed: 11 })]);
    const c = await p.complete({ ...request, seed: 12 });
    expect(b.text).toBe(a.text);
    expect(c.text).not.toBe(a.text);
    // node-llama-cpp's own default seed is the current second; the provider draws a random one.
    const [x, y] = await Promise.all([p.complete(request), p.complete(request)]);
    expect(x.text).not.toBe(y.text);
    // topP close to 0 is greedy whatever the temperature and seed.
    const greedy = await p.complete({ prompt: 'The sea', maxTokens: 40, temperature: 0 });
    const nucleus = await p.complete({ ...request, topP: 1e-6, seed: 99 });
    expect(nucleus.text).toBe(greedy.text);
  });

  it('stop sequences end the text before the match, streamed or not', async () => {
    const base = await p.complete({ prompt: 'Stop me', maxTokens: 80, temperature: 0 });
    const stop = base.text.slice(30, 33);
    const expected = base.text.slice(0, base.text.indexOf(stop));
    const whole = await p.complete({ prompt: 'Stop me', maxTokens: 80, temperature: 0, stop: [stop, 'never-there'] });
    expect(whole.text).toBe(expected);
    expect(whole.finishReason).toBe('stop');
    const streamed = await collect(p.streamComplete({ prompt: 'Stop me', maxTokens: 80, temperature: 0, stop: [stop] }));
    expect(streamed.text).toBe(expected);
    expect(streamed.finish.finishReason).toBe('stop');
    // The stop sequence's tokens were generated: they are counted.
    expect(whole.usage.completionTokens).toBe(expected.length + stop.length);
  });

  it('chat: systemPrompt is used when the request has no system message; roles map to the template', async () => {
    const withOption = await provider({ systemPrompt: 'Be brief.', sequences: 1 });
    const user: ChatMessage[] = [{ role: 'user', content: 'Hi' }];
    const a = await withOption.chat({ messages: user, maxTokens: 1, temperature: 0 });
    const b = await p.chat({ messages: user, maxTokens: 1, temperature: 0 });
    expect(a.usage.promptTokens - b.usage.promptTokens).toBeGreaterThanOrEqual('<|system|>\nBe brief.'.length);
    const explicit = await withOption.chat({ messages: [{ role: 'developer', content: 'X' }, ...user], maxTokens: 1, temperature: 0 });
    expect(explicit.usage.promptTokens).toBeLessThan(a.usage.promptTokens);
    const multiTurn = await p.chat({
      messages: [...user, { role: 'assistant', content: 'Hello!' }, { role: 'user', content: 'Again' }],
      maxTokens: 5,
      temperature: 0,
    });
    expect(multiTurn.usage.completionTokens).toBe(5);
    await expect(rejection(p.chat({ messages: [], maxTokens: 1 }))).resolves.toMatchObject({ code: 'invalid_request' });
  });
});

describe('llama-cpp provider: response_format (grammar-constrained sampling)', () => {
  let p: LlamaCppProvider;
  beforeAll(async () => {
    p = await provider({ sequences: 2 });
  });

  const schema = {
    type: 'object',
    properties: { answer: { enum: ['yes', 'no'] }, count: { type: 'integer' } },
    required: ['answer', 'count'],
    additionalProperties: false,
  };
  const jsonSchema = { response_format: { type: 'json_schema', json_schema: { name: 'answer', schema } } };

  it('json_schema: the text is JSON matching the schema, ends with stop, streamed or not, chat and completion', async () => {
    // The tiny model's weights are random: without the grammar its text is never JSON.
    const free = await p.chat({ messages, maxTokens: 60, temperature: 0 });
    expect(() => JSON.parse(free.text)).toThrow();
    const chat = await p.chat({ messages, maxTokens: 60, temperature: 0, extra: jsonSchema });
    const parsed = JSON.parse(chat.text) as { answer: string; count: number };
    expect(Object.keys(parsed).sort()).toEqual(['answer', 'count']);
    expect(['yes', 'no']).toContain(parsed.answer);
    expect(Number.isInteger(parsed.count)).toBe(true);
    expect(chat.finishReason).toBe('stop');
    const streamed = await collect(p.streamChat({ messages, maxTokens: 60, temperature: 0, extra: jsonSchema }));
    expect(streamed.text).toBe(chat.text);
    expect(streamed.finish.finishReason).toBe('stop');
    const completion = await p.complete({ prompt: 'Answer:', maxTokens: 60, temperature: 0, extra: jsonSchema });
    expect(Object.keys(JSON.parse(completion.text) as object).sort()).toEqual(['answer', 'count']);
    // Sampled (temperature 1), still valid.
    for (const seed of [1, 2, 3]) {
      const sampled = await p.chat({ messages, maxTokens: 60, seed, extra: jsonSchema });
      expect(['yes', 'no']).toContain((JSON.parse(sampled.text) as { answer: string }).answer);
    }
  });

  it("json_object: the text starts a JSON object (this model never closes it: 'length' at maxTokens)", async () => {
    const result = await p.chat({ messages, maxTokens: 40, temperature: 0, extra: { response_format: { type: 'json_object' } } });
    expect(result.text.startsWith('{')).toBe(true);
    // A schema-less json_schema is the same.
    const schemaless = await p.chat({ messages, maxTokens: 40, temperature: 0, extra: { response_format: { type: 'json_schema', json_schema: { name: 'x' } } } });
    expect(schemaless.text).toBe(result.text);
  });

  it("'text', null or no response_format: the plain output", async () => {
    const plain = await p.chat({ messages, maxTokens: 30, temperature: 0 });
    for (const response_format of [{ type: 'text' }, null]) {
      expect((await p.chat({ messages, maxTokens: 30, temperature: 0, extra: { response_format } })).text).toBe(plain.text);
    }
  });

  it('a malformed response_format is an invalid_request naming the field', async () => {
    const cases: Array<[unknown, string]> = [
      ['json', 'response_format'],
      [{ type: 'xml' }, 'response_format.type'],
      [{ type: 'json_schema' }, 'response_format.json_schema'],
      [{ type: 'json_schema', json_schema: { name: 'x', schema: 'object' } }, 'response_format.json_schema.schema'],
      // Not JSON Schema: node-llama-cpp used to make grammars of these (answers `null` or empty).
      [{ type: 'json_schema', json_schema: { name: 'x', schema: { type: 'nope' } } }, 'response_format.json_schema.schema'],
      [{ type: 'json_schema', json_schema: { name: 'x', schema: { enum: [] } } }, 'response_format.json_schema.schema'],
      [{ type: 'json_schema', json_schema: { name: 'x', schema: { $ref: '#/$defs/none' } } }, 'response_format.json_schema.schema'],
    ];
    for (const [response_format, param] of cases) {
      const error = await rejection(p.chat({ messages, maxTokens: 5, extra: { response_format } }));
      expect(error, JSON.stringify(response_format)).toMatchObject({ code: 'invalid_request', param, isRetryable: false });
      // A stream fails before its first part, so the API answers a plain 400.
      const streamError = await rejection(collect(p.streamComplete({ prompt: 'x', maxTokens: 5, extra: { response_format } })));
      expect(streamError, JSON.stringify(response_format)).toMatchObject({ code: 'invalid_request', param });
    }
  });
});

describe('llama-cpp provider: logit_bias, top_k, min_p, repetition_penalty (from extra)', () => {
  let p: LlamaCppProvider;
  beforeAll(async () => {
    p = await provider({ sequences: 1 });
  });
  const prompt = 'Once upon a time';
  const complete = (extra: Record<string, unknown>, params: Partial<CompletionRequest> = {}) =>
    p.complete({ prompt, maxTokens: 12, temperature: 0, ...params, extra });
  // The tiny model's vocabulary: one token per byte, id = byte + 3.
  const tokenOf = (char: string) => String(char.charCodeAt(0) + 3);

  it('logit_bias: +100 forces a token, -100 bans the greedy choice', async () => {
    const greedy = (await complete({})).text;
    expect((await complete({ logit_bias: { [tokenOf('z')]: 100 } }, { maxTokens: 4 })).text).toBe('zzzz');
    const banned = await complete({ logit_bias: { [tokenOf(greedy[0] as string)]: -100 } });
    expect(banned.text).not.toContain(greedy[0]);
    // A small bias is not a ban: the greedy text is unchanged by +0 and stays reproducible.
    expect((await complete({ logit_bias: { [tokenOf('q')]: 0 } })).text).toBe(greedy);
  });

  it('top_k 1 and min_p 1 make any seed give the greedy text; repetition_penalty changes a repetitive text', async () => {
    const greedy = (await complete({}, { maxTokens: 24 })).text;
    for (const seed of [1, 2, 3]) {
      expect((await complete({ top_k: 1 }, { temperature: 1, seed, maxTokens: 24 })).text).toBe(greedy);
      expect((await complete({ min_p: 1 }, { temperature: 1, seed, maxTokens: 24 })).text).toBe(greedy);
    }
    expect(new Set(greedy).size).toBeLessThan(greedy.length); // it repeats characters
    expect((await complete({ repetition_penalty: 10 }, { maxTokens: 24 })).text).not.toBe(greedy);
    expect((await complete({ top_k: -1, min_p: 0, repetition_penalty: 1 }, { maxTokens: 24 })).text).toBe(greedy);
  });

  it('malformed values are invalid requests naming the field', async () => {
    const cases: Array<[Record<string, unknown>, string]> = [
      [{ top_k: 1.5 }, 'top_k'],
      [{ top_k: -2 }, 'top_k'],
      [{ min_p: 2 }, 'min_p'],
      [{ repetition_penalty: 0 }, 'repetition_penalty'],
      [{ logit_bias: [1] }, 'logit_bias'],
      [{ logit_bias: { 260: 1 } }, 'logit_bias.260'],
      [{ logit_bias: { abc: 1 } }, 'logit_bias.abc'],
      [{ logit_bias: { 5: 101 } }, 'logit_bias.5'],
    ];
    for (const [extra, param] of cases) {
      expect(await rejection(complete(extra)), JSON.stringify(extra)).toMatchObject({ code: 'invalid_request', param });
      expect(await rejection(p.chat({ messages, extra })), JSON.stringify(extra)).toMatchObject({ code: 'invalid_request', param });
    }
  });
});

describe('llama-cpp provider: echo and suffix (legacy completions, from extra)', () => {
  let p: LlamaCppProvider;
  beforeAll(async () => {
    p = await provider({ sequences: 1 });
  });
  const prompt = 'Once upon a time';

  it('echo: true puts the prompt before the generated text, streamed or not; usage is unchanged', async () => {
    const plain = await p.complete({ prompt, maxTokens: 6, temperature: 0 });
    const echoed = await p.complete({ prompt, maxTokens: 6, temperature: 0, extra: { echo: true } });
    expect(echoed.text).toBe(prompt + plain.text);
    expect(echoed.usage).toMatchObject({ promptTokens: plain.usage.promptTokens, completionTokens: plain.usage.completionTokens });
    const streamed = await collect(p.streamComplete({ prompt, maxTokens: 6, temperature: 0, extra: { echo: true } }));
    expect(streamed.text).toBe(prompt + plain.text);
    expect((await p.complete({ prompt, maxTokens: 6, temperature: 0, extra: { echo: false } })).text).toBe(plain.text);
    // Chat has no echo: the field is not read there.
    expect((await p.chat({ messages, maxTokens: 6, temperature: 0, extra: { echo: true } })).text).toBe((await p.chat({ messages, maxTokens: 6, temperature: 0 })).text);
  });

  it('a malformed echo and a non-empty suffix are refused before anything is generated (streams too)', async () => {
    expect(await rejection(p.complete({ prompt, extra: { echo: 'yes' } }))).toMatchObject({ code: 'invalid_request', param: 'echo' });
    expect(await rejection(p.complete({ prompt, extra: { suffix: ' The end.' } }))).toMatchObject({ code: 'not_supported', param: 'suffix' });
    expect(await rejection(collect(p.streamComplete({ prompt, extra: { echo: true, suffix: 'x' } })))).toMatchObject({ param: 'suffix' });
    expect((await p.complete({ prompt, maxTokens: 2, temperature: 0, extra: { suffix: '' } })).text).toHaveLength(2);
  });
});

describe('llama-cpp provider: prompt cache', () => {
  const system = 'You are a careful assistant who answers in one short sentence. '.repeat(4);
  const chatWith = (user: string, systemText = system) => ({
    messages: [
      { role: 'system' as const, content: systemText },
      { role: 'user' as const, content: user },
    ],
    maxTokens: 6,
    temperature: 0,
  });

  it('a request sharing a prefix with an earlier one reuses it (usage.cachedPromptTokens), with the same output as a cold run', async () => {
    const warm = await provider({ sequences: 2 });
    const cold = await provider({ sequences: 2, promptCache: false });
    const first = await warm.chat(chatWith('First question?'));
    expect(first.usage.cachedPromptTokens).toBe(0);
    const second = await warm.chat(chatWith('Second question?'));
    // The system prompt and the template around it (~260 tokens) were not evaluated again.
    expect(second.usage.cachedPromptTokens).toBeGreaterThan(system.length);
    expect(second.usage.cachedPromptTokens).toBeLessThan(second.usage.promptTokens);
    const again = await warm.chat(chatWith('Second question?'));
    expect(again.usage.cachedPromptTokens).toBe(again.usage.promptTokens - 1);
    for (const request of [chatWith('Second question?'), chatWith('First question?')]) {
      const coldResult = await cold.chat(request);
      expect(coldResult.usage.cachedPromptTokens).toBe(0);
      expect((await warm.chat(request)).text).toBe(coldResult.text);
    }
    // Completions too.
    await warm.complete({ prompt: `${system} Once upon a time`, maxTokens: 4, temperature: 0 });
    const completion = await warm.complete({ prompt: `${system} Once upon a time there`, maxTokens: 4, temperature: 0 });
    expect(completion.usage.cachedPromptTokens).toBeGreaterThan(system.length);
    expect(completion.text).toBe((await cold.complete({ prompt: `${system} Once upon a time there`, maxTokens: 4, temperature: 0 })).text);
  });

  it('two conversations on two sequences each get the sequence holding their own prefix', async () => {
    const p = await provider({ sequences: 2 });
    const other = 'Translate everything the user says into French, word by word. '.repeat(4);
    await Promise.all([p.chat(chatWith('A1')), p.chat(chatWith('B1', other))]);
    for (const turn of ['2', '3']) {
      const [a, b] = [await p.chat(chatWith(`A${turn}`)), await p.chat(chatWith(`B${turn}`, other))];
      expect(a.usage.cachedPromptTokens).toBeGreaterThan(system.length);
      expect(b.usage.cachedPromptTokens).toBeGreaterThan(other.length);
    }
  });

  it('an aborted request leaves its sequence cleared; promptCache: false never reuses', async () => {
    const p = await provider({ sequences: 1 });
    await p.chat(chatWith('Warm up'));
    expect((await p.chat(chatWith('Warm up'))).usage.cachedPromptTokens).toBeGreaterThan(system.length);
    const controller = new AbortController();
    const aborted = (async () => {
      for await (const part of p.streamChat({ ...chatWith('Warm up'), maxTokens: 200 }, { signal: controller.signal })) {
        if (part.type === 'delta') controller.abort();
      }
    })();
    expect(await rejection(aborted)).toMatchObject({ code: 'aborted' });
    expect((await p.chat(chatWith('Warm up'))).usage.cachedPromptTokens).toBe(0);
    const off = await provider({ sequences: 1, promptCache: false });
    await off.chat(chatWith('Warm up'));
    expect((await off.chat(chatWith('Warm up'))).usage.cachedPromptTokens).toBe(0);
  });
});

describe('llama-cpp provider: embeddings', () => {
  let p: LlamaCppProvider;
  beforeAll(async () => {
    p = await provider({ sequences: 1, contextSize: 256 });
  });
  const norm = (v: readonly number[]) => Math.hypot(...v);

  it('gives one unit-length vector of the model width per input, the same for the same text, different for others', async () => {
    const result = await p.embed({ input: ['hello world', 'a completely different sentence', 'hello world'] });
    expect(result.embeddings).toHaveLength(3);
    for (const v of result.embeddings) {
      expect(v).toHaveLength(64);
      expect(norm(v)).toBeCloseTo(1, 6);
    }
    expect(result.embeddings[2]).toEqual(result.embeddings[0]);
    expect(result.embeddings[1]).not.toEqual(result.embeddings[0]);
    // BOS, one token per byte (the tiny model's vocabulary) and EOS, per input.
    expect(result.usage.promptTokens).toBe(2 * 3 + 11 + 31 + 11);
    // Embeddings do not take a generation sequence: a chat runs alongside.
    const [chat, again] = await Promise.all([p.chat({ messages, maxTokens: 2, temperature: 0 }), p.embed({ input: ['hello world'] })]);
    expect(chat.usage.completionTokens).toBe(2);
    expect(again.embeddings[0]).toEqual(result.embeddings[0]);
  });

  it("'dimensions' other than the model width, empty and too long inputs are invalid requests naming the field", async () => {
    await expect(p.embed({ input: ['x'], dimensions: 64 })).resolves.toMatchObject({ embeddings: [expect.any(Array)] });
    expect(await rejection(p.embed({ input: ['x'], dimensions: 8 }))).toMatchObject({ code: 'invalid_request', param: 'dimensions' });
    expect(await rejection(p.embed({ input: ['x', ''] }))).toMatchObject({ code: 'invalid_request', param: 'input[1]' });
    const long = await rejection(p.embed({ input: ['x', 'y'.repeat(300)] }));
    expect(long).toMatchObject({ code: 'context_length_exceeded', param: 'input[1]' });
    expect(long.message).toBe('input[1] has 302 tokens; this model embeds at most 255.');
    expect(await rejection(p.embed({ input: ['x'] }, { signal: AbortSignal.abort() }))).toMatchObject({ code: 'aborted' });
  });
});

describe('llama-cpp provider: context length', () => {
  let p: LlamaCppProvider;
  beforeAll(async () => {
    p = await provider({ contextSize: 256, sequences: 1 });
  });

  it("a prompt that does not fit fails with 'context_length_exceeded' (400, not retryable)", async () => {
    const error = await rejection(p.complete({ prompt: 'x'.repeat(300) }));
    expect(error).toMatchObject({ code: 'context_length_exceeded', isRetryable: false, param: 'prompt' });
    expect(error.message).toMatch(/maximum context length is 256 tokens/);
    const chatError = await rejection(p.chat({ messages: [{ role: 'user', content: 'y'.repeat(300) }] }));
    expect(chatError).toMatchObject({ code: 'context_length_exceeded', param: 'messages' });
    const streamError = await rejection(collect(p.streamChat({ messages: [{ role: 'user', content: 'y'.repeat(300) }] })));
    expect(streamError.code).toBe('context_length_exceeded');
  });

  it('a text far longer than the context is refused before it is tokenized (no event-loop stall on ~1 MB)', async () => {
    const huge = 'x'.repeat(1_000_000);
    const started = performance.now();
    const errors = [
      await rejection(p.complete({ prompt: huge })),
      await rejection(p.chat({ messages: [{ role: 'user', content: 'hi' }, { role: 'user', content: huge }] })),
      await rejection(p.embed({ input: ['x', huge] })),
    ];
    // Tokenizing this much took ~50 s here before the check (the tokenizer is synchronous).
    expect(performance.now() - started).toBeLessThan(1_000);
    expect(errors.map((e) => [e.code, e.param])).toEqual([
      ['context_length_exceeded', 'prompt'],
      ['context_length_exceeded', 'messages'],
      ['context_length_exceeded', 'input[1]'],
    ]);
    expect(errors[0]!.message).toBe(
      "This model's maximum context length is 256 tokens, and the prompt (1000000 characters) is far longer than that. Please shorten the prompt.",
    );
  });

  it('an explicit maxTokens must fit beside the prompt; the default is capped by the room left', async () => {
    const prompt = 'x'.repeat(100); // 101 tokens with BOS
    const room = 256 - 1 - 101;
    const full = await p.complete({ prompt, maxTokens: room, temperature: 0 });
    expect(full).toMatchObject({ finishReason: 'length', usage: { promptTokens: 101, completionTokens: room } });
    const error = await rejection(p.complete({ prompt, maxTokens: room + 1, temperature: 0 }));
    expect(error).toMatchObject({ code: 'context_length_exceeded', param: 'max_tokens' });
    const defaulted = await p.complete({ prompt, temperature: 0 });
    expect(defaulted.usage.completionTokens).toBe(room);
    // Chat fills the context exactly too (no silent history compression).
    const chatPrompt = (await p.chat({ messages: [{ role: 'user', content: 'z'.repeat(150) }], maxTokens: 1 })).usage.promptTokens;
    const chat = await p.chat({ messages: [{ role: 'user', content: 'z'.repeat(150) }], maxTokens: 255 - chatPrompt, temperature: 0 });
    expect(chat).toMatchObject({ finishReason: 'length', usage: { completionTokens: 255 - chatPrompt } });
  });
});

describe('llama-cpp provider: abort', () => {
  let p: LlamaCppProvider;
  beforeAll(async () => {
    p = await provider({ sequences: 1 });
  });

  it('a pre-aborted signal rejects without generating', async () => {
    const signal = AbortSignal.abort();
    expect((await rejection(p.chat({ messages }, { signal }))).code).toBe('aborted');
    const stream = p.streamComplete({ prompt: 'x' }, { signal });
    expect((await rejection(collect(stream))).code).toBe('aborted');
  });

  it('aborting mid-stream stops promptly; the cleared sequence serves the next request as if new', async () => {
    const baseline = await p.complete({ prompt: 'Fresh', maxTokens: 40, temperature: 0 });
    const controller = new AbortController();
    const iterator = p.streamChat({ messages, maxTokens: 1900, temperature: 0 }, { signal: controller.signal })[Symbol.asyncIterator]();
    let received = 0;
    for (let i = 0; i < 5; i++) {
      const next = await iterator.next();
      if (next.value?.type === 'delta') received += next.value.text.length;
    }
    const abortedAt = performance.now();
    controller.abort();
    const error = await rejection(iterator.next());
    const abortMs = performance.now() - abortedAt;
    expect(error.code).toBe('aborted');
    expect(error.isRetryable).toBe(false);
    expect(abortMs).toBeLessThan(100);
    expect(received).toBeLessThan(1900);
    expect(await iterator.next()).toEqual({ done: true, value: undefined });
    // sequences: 1, so this reuses the aborted request's sequence.
    const after = await p.complete({ prompt: 'Fresh', maxTokens: 40, temperature: 0 });
    expect(after.text).toBe(baseline.text);
  });

  it('aborting a non-stream call rejects at once; a consumer that stops iterating releases the sequence', async () => {
    const controller = new AbortController();
    const pending = p.complete({ prompt: 'Long', maxTokens: 2000, temperature: 0 }, { signal: controller.signal });
    setTimeout(() => controller.abort(), 20);
    expect((await rejection(pending)).code).toBe('aborted');

    for await (const part of p.streamComplete({ prompt: 'Long', maxTokens: 2000, temperature: 0 })) {
      expect(part.type).toBe('delta');
      break;
    }
    // If either generation still held the only sequence, this would wait for 2000 tokens.
    const started = performance.now();
    await p.complete({ prompt: 'Next', maxTokens: 5, temperature: 0 });
    expect(performance.now() - started).toBeLessThan(300);
  });

  it("beyond maxQueue waiting requests, a request fails at once with a retryable 'rate_limited'", async () => {
    const bounded = await provider({ sequences: 1, maxQueue: 1 });
    const long = { prompt: 'Busy', maxTokens: 100, temperature: 0 };
    const running = bounded.complete(long);
    const queued = bounded.complete(long);
    await new Promise((r) => setTimeout(r, 5));
    const started = performance.now();
    const refused = await rejection(bounded.complete(long));
    expect(performance.now() - started).toBeLessThan(50);
    expect(refused).toMatchObject({ code: 'rate_limited', isRetryable: true });
    expect(refused.message).toMatch(/overloaded: all 1 sequences are busy and 1 requests are waiting \(maxQueue\)/);
    await Promise.all([running, queued]);
    await expect(bounded.complete({ ...long, maxTokens: 2 })).resolves.toMatchObject({ finishReason: 'length' });
  });

  it('a queued request whose signal aborts leaves the queue; the others are served in FIFO order', async () => {
    const order: number[] = [];
    const run = (i: number, signal?: AbortSignal) =>
      p.complete({ prompt: `Request ${i}`, maxTokens: 100, temperature: 0 }, signal ? { signal } : {}).then((r) => {
        order.push(i);
        return r;
      });
    const controller = new AbortController();
    const calls = [run(0), run(1), run(2, controller.signal), run(3), run(4)];
    await new Promise((r) => setTimeout(r, 5));
    expect((await p.health()).detail).toMatch(/1\/1 sequences busy, 4 queued/);
    controller.abort();
    expect((await rejection(calls[2] as Promise<unknown>)).code).toBe('aborted');
    expect((await p.health()).detail).toMatch(/3 queued/);
    await Promise.all([calls[0], calls[1], calls[3], calls[4]]);
    expect(order).toEqual([0, 1, 3, 4]);
    expect((await p.health()).detail).toMatch(/0\/1 sequences busy, 0 queued/);
  });
});

describe('llama-cpp provider: concurrency', () => {
  it('8 concurrent requests on 2 sequences all complete, 2 at a time, interleaved and reproducible', async () => {
    const p = await provider({ sequences: 2 });
    const spans: Array<{ first: number; end: number }> = [];
    const t0 = performance.now();
    const results = await Promise.all(
      Array.from({ length: 8 }, async () => {
        let first = 0;
        let text = '';
        for await (const part of p.streamComplete({ prompt: 'Same prompt', maxTokens: 300, temperature: 0 })) {
          if (part.type === 'delta') {
            first ||= performance.now() - t0;
            text += part.text;
          }
        }
        spans.push({ first, end: performance.now() - t0 });
        return text;
      }),
    );
    const wallMs = performance.now() - t0;
    expect(results.every((text) => text.length === 300)).toBe(true);
    // Batched decoding does not change greedy results.
    expect(new Set(results).size).toBe(1);
    // At most 2 streams are generating at any moment, and 2 are generating at once (not serialized).
    const activeAt = (t: number) => spans.filter((s) => s.first <= t && t < s.end).length;
    const maxActive = Math.max(...spans.map((s) => activeAt(s.first)));
    expect(maxActive).toBe(2);

    // Against one sequence (serialized): informative, the tiny model is bound by JavaScript overhead.
    const single = await provider({ sequences: 1 });
    const s0 = performance.now();
    await Promise.all(Array.from({ length: 8 }, () => collect(single.streamComplete({ prompt: 'Same prompt', maxTokens: 300, temperature: 0 }))));
    const serializedMs = performance.now() - s0;
    console.info(`8×300 tokens: ${Math.round(wallMs)} ms on 2 sequences, ${Math.round(serializedMs)} ms on 1`);
  });

  it('sequences: 8 decodes 8 requests at once, each with the text it gets alone (no logits crossing sequences)', async () => {
    // Without the logits-reorder guard this failed 4 runs out of 4 here: some reply got a token
    // sampled from another sequence's logits (see logits-race-guard.ts).
    const p = await provider({ sequences: 8 });
    const prompts = Array.from({ length: 8 }, (_, i) => `Prompt ${i} ${'z'.repeat(i * 5)}`);
    const alone: string[] = [];
    for (const prompt of prompts) alone.push((await p.complete({ prompt, maxTokens: 300, temperature: 0 })).text);
    const sameAlone = await p.chat({ messages, maxTokens: 300, temperature: 0 });
    for (let round = 0; round < 3; round++) {
      const mixed = await Promise.all(prompts.map((prompt) => p.complete({ prompt, maxTokens: 300, temperature: 0 })));
      expect(mixed.map((r) => r.text)).toEqual(alone);
      const same = await Promise.all(Array.from({ length: 8 }, () => p.chat({ messages, maxTokens: 300, temperature: 0 })));
      for (const result of same) expect(result.text).toBe(sameAlone.text);
    }
  });
});

describe('llama-cpp provider: lifecycle and configuration', () => {
  it('close() rejects the running and queued requests (retryable) and later ones, and reports unhealthy', async () => {
    const p = await provider({ sequences: 1 });
    const running = rejection(p.complete({ prompt: 'Long', maxTokens: 2000, temperature: 0 }));
    const queued = rejection(p.complete({ prompt: 'Queued', maxTokens: 10 }));
    await new Promise((r) => setTimeout(r, 10));
    expect((await p.health()).detail).toMatch(/1\/1 sequences busy, 1 queued/);
    await p.close();
    for (const error of await Promise.all([running, queued])) {
      expect(error).toMatchObject({ code: 'upstream_unavailable', isRetryable: true });
    }
    expect((await rejection(p.chat({ messages }))).code).toBe('upstream_unavailable');
    expect(await p.health()).toEqual({ healthy: false, detail: 'closed' });
    await p.close(); // idempotent
  });

  it('a missing model file makes init() fail (retryable, so the router tries elsewhere) and health() unhealthy', async () => {
    const p = new LlamaCppProvider({ modelPath: 'missing.gguf' }, context());
    providers.push(p);
    expect(await p.health()).toMatchObject({ healthy: false, detail: expect.stringMatching(/not loaded/) });
    const error = await rejection(p.init());
    expect(error).toMatchObject({ code: 'upstream_unavailable', isRetryable: true });
    expect(error.message).toContain(join(dir, 'missing.gguf'));
    expect(await p.health()).toMatchObject({ healthy: false, detail: expect.stringMatching(/failed to load/) });
    expect((await rejection(p.complete({ prompt: 'x' }))).code).toBe('upstream_unavailable');
  });

  it('is created by the registry from validated options with defaults, relative to the models file', async () => {
    const registry = new ModelProviderRegistry([llamaCppProviderDefinition]);
    const p = registry.create('llama-cpp', { modelPath: 'tiny.gguf' }, context()) as LlamaCppProvider;
    providers.push(p);
    await p.init();
    expect((await p.health()).detail).toMatch(/0\/4 sequences busy.*context 2048 tokens per sequence; threads 1$/);
    expect(() => registry.create('llama-cpp', { modelPath: 'x.gguf', thread: 2 }, context())).toThrow(/"thread"/);
    expect(() => registry.create('llama-cpp', {}, context())).toThrow(/modelPath/);
    expect(() => registry.create('llama-cpp', { modelPath: 'x.gguf', sequences: 0 }, context())).toThrow(/sequences/);
  });

  it('chatWrapper picks how chats are rendered; the list matches node-llama-cpp', async () => {
    const { resolvableChatWrapperTypeNames } = await import('node-llama-cpp');
    expect([...LLAMA_CPP_CHAT_WRAPPERS]).toEqual([...resolvableChatWrapperTypeNames]);
    const chatML = await provider({ chatWrapper: 'chatML', sequences: 1 });
    const jinja = await provider({ sequences: 1 });
    const user: ChatMessage[] = [{ role: 'user', content: 'Hi' }];
    const a = await chatML.chat({ messages: user, maxTokens: 1, temperature: 0 });
    const b = await jinja.chat({ messages: user, maxTokens: 1, temperature: 0 });
    // `<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n` is longer than `<|user|>\nHi</s>\n<|assistant|>\n`.
    expect(a.usage.promptTokens).toBeGreaterThan(b.usage.promptTokens + 10);
  });

  it('builtin:tiny-llama writes the built-in model on first use', async () => {
    const p = new LlamaCppProvider({ modelPath: 'builtin:tiny-llama', builtinDir: join(dir, 'builtin') }, context());
    providers.push(p);
    await p.init();
    expect(p.label).toBe('llama-cpp(builtin:tiny-llama, tiny)');
    expect((await p.complete({ prompt: 'Hi', maxTokens: 3, temperature: 0 })).usage.completionTokens).toBe(3);
    expect(() => new LlamaCppProvider({ modelPath: 'builtin:nope' }, context())).toThrow(/Unknown built-in model/);
  });
});
