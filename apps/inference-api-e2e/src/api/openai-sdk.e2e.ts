import OpenAI from 'openai';
import { type FakeUpstream, startFakeUpstream } from '@infer/model-providers/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type ApiServer, startApiServer } from '../support/api-server.js';
import { fakeModelsYaml } from '../support/load.js';

/**
 * The official `openai` npm client, unmodified, against a real server process: once on the
 * built-in llama.cpp model (no MODELS_FILE), once through `openai-compatible` to a fake upstream.
 */
interface Target {
  readonly name: string;
  readonly model: string;
  /** The model's provider does tool calling. */
  readonly tools: boolean;
  /** The model's provider returns log probabilities. */
  readonly logprobs: boolean;
  setup(): Promise<{ server: ApiServer; upstream?: FakeUpstream }>;
}

const targets: Target[] = [
  {
    name: 'built-in llama.cpp model (embedded defaults)',
    model: 'tiny-llama',
    tools: false,
    logprobs: false,
    setup: async () => ({ server: await startApiServer({ env: { CACHE_ENABLED: 'false' } }) }),
  },
  {
    name: 'openai-compatible provider to a fake upstream',
    model: 'fake-chat',
    tools: true,
    logprobs: true,
    setup: async () => {
      const upstream = await startFakeUpstream({ tokens: 12, models: ['upstream-model'] });
      const server = await startApiServer({
        env: { CACHE_ENABLED: 'false' },
        modelsYaml: fakeModelsYaml(upstream.url, 'fake-chat', { upstreamModel: 'upstream-model' }),
      });
      return { server, upstream };
    },
  },
];

describe.each(targets)('OpenAI SDK against $name', (target) => {
  let server: ApiServer;
  let upstream: FakeUpstream | undefined;
  let client: OpenAI;

  beforeAll(async () => {
    ({ server, upstream } = await target.setup());
    client = new OpenAI({ baseURL: `${server.url}/v1`, apiKey: 'test-key', maxRetries: 0 });
  });

  afterAll(async () => {
    await server?.stop();
    await upstream?.close();
  });

  it('lists and retrieves models', async () => {
    const page = await client.models.list();
    expect(page.data.map((m) => m.id)).toContain(target.model);
    const model = await client.models.retrieve(target.model);
    expect(model).toMatchObject({ id: target.model, object: 'model' });
  });

  it('creates a chat completion', async () => {
    const completion = await client.chat.completions.create({
      model: target.model,
      messages: [{ role: 'user', content: 'Say hello' }],
      max_tokens: 8,
      temperature: 0,
    });
    expect(completion.object).toBe('chat.completion');
    expect(completion.model).toBe(target.model);
    expect(completion.id).toMatch(/^chatcmpl-/);
    const choice = completion.choices[0]!;
    expect(choice.message.role).toBe('assistant');
    expect(typeof choice.message.content).toBe('string');
    expect(['stop', 'length']).toContain(choice.finish_reason);
    expect(completion.usage!.completion_tokens).toBeGreaterThan(0);
    expect(completion.usage!.completion_tokens).toBeLessThanOrEqual(8);
    expect(completion.usage!.total_tokens).toBe(completion.usage!.prompt_tokens + completion.usage!.completion_tokens);
    if (upstream) expect(upstream.requests.at(-1)?.body).toMatchObject({ model: 'upstream-model', max_tokens: 8 });
  });

  it('streams a chat completion with include_usage, matching the non-streamed text', async () => {
    const request = { model: target.model, messages: [{ role: 'user' as const, content: 'Count with me' }], max_tokens: 10, temperature: 0 };
    const whole = await client.chat.completions.create(request);
    const stream = await client.chat.completions.create({ ...request, stream: true, stream_options: { include_usage: true } });
    let text = '';
    let role: string | undefined;
    let finish: string | null | undefined;
    let usageChunks = 0;
    let chunks = 0;
    for await (const chunk of stream) {
      chunks++;
      expect(chunk.object).toBe('chat.completion.chunk');
      if (chunk.usage) {
        usageChunks++;
        expect(chunk.choices).toEqual([]);
        expect(chunk.usage.completion_tokens).toBe(whole.usage!.completion_tokens);
        continue;
      }
      const choice = chunk.choices[0]!;
      role ??= choice.delta.role;
      text += choice.delta.content ?? '';
      if (choice.finish_reason) finish = choice.finish_reason;
    }
    expect(chunks).toBeGreaterThan(2);
    expect(role).toBe('assistant');
    expect(text).toBe(whole.choices[0]!.message.content);
    expect(finish).toBe(whole.choices[0]!.finish_reason);
    expect(usageChunks).toBe(1);
  });

  it('creates completions, streamed and not', async () => {
    const completion = await client.completions.create({ model: target.model, prompt: 'Once upon a time', max_tokens: 6, temperature: 0 });
    expect(completion.object).toBe('text_completion');
    expect(completion.choices[0]!.text.length).toBeGreaterThan(0);
    expect(completion.usage!.completion_tokens).toBeLessThanOrEqual(6);
    const stream = await client.completions.create({ model: target.model, prompt: 'Once upon a time', max_tokens: 6, temperature: 0, stream: true });
    let text = '';
    for await (const chunk of stream) text += chunk.choices[0]?.text ?? '';
    expect(text).toBe(completion.choices[0]!.text);
  });

  it('echo: the completion text starts with the prompt (in-process), or echo is passed to the upstream', async () => {
    const request = { model: target.model, prompt: 'Once upon a time', max_tokens: 6, temperature: 0 };
    const plain = await client.completions.create(request);
    const echoed = await client.completions.create({ ...request, echo: true });
    if (upstream) {
      expect(upstream.requests.at(-1)!.body).toMatchObject({ echo: true });
      return;
    }
    expect(echoed.choices[0]!.text).toBe(request.prompt + plain.choices[0]!.text);
    expect(echoed.usage).toMatchObject({ prompt_tokens: plain.usage!.prompt_tokens, completion_tokens: plain.usage!.completion_tokens });
    const stream = await client.completions.create({ ...request, echo: true, stream: true });
    let text = '';
    for await (const chunk of stream) text += chunk.choices[0]?.text ?? '';
    expect(text).toBe(echoed.choices[0]!.text);
    const suffix = await client.completions.create({ ...request, suffix: ' The end.' }).catch((e: unknown) => e);
    expect((suffix as InstanceType<typeof OpenAI.BadRequestError>).error).toMatchObject({ param: 'suffix' });
  });

  it('n > 1: several choices, streamed or not, usage counting the prompt once', async () => {
    const request = { model: target.model, messages: [{ role: 'user' as const, content: 'Tell me a story' }], max_tokens: 8, temperature: 1, seed: 5, n: 3 };
    const before = upstream?.requestCount ?? 0;
    const completion = await client.chat.completions.create(request);
    expect(completion.choices.map((c) => c.index)).toEqual([0, 1, 2]);
    const single = await client.chat.completions.create({ ...request, n: 1 });
    // Choice 0 is what n = 1 answers; the others sampled with seed + i.
    expect(completion.choices[0]!.message.content).toBe(single.choices[0]!.message.content);
    expect(completion.usage!.prompt_tokens).toBe(single.usage!.prompt_tokens);
    if (upstream) {
      expect(upstream.requestCount - before).toBe(4);
      const seeds = upstream.requests.slice(-4, -1).map((r) => (r.body as Record<string, unknown>)['seed']);
      expect(seeds.sort()).toEqual([5, 6, 7]);
      expect(upstream.requests.at(-1)!.body).not.toHaveProperty('n');
    } else {
      expect(new Set(completion.choices.map((c) => c.message.content)).size).toBeGreaterThan(1);
      expect(completion.usage!.completion_tokens).toBe(24);
    }
    // Streamed: chunks of the three choices interleave; each choice's text is the non-streamed one.
    const stream = await client.chat.completions.create({ ...request, stream: true, stream_options: { include_usage: true } });
    const texts = ['', '', ''];
    const finished: number[] = [];
    let usage: OpenAI.CompletionUsage | undefined;
    for await (const chunk of stream) {
      for (const choice of chunk.choices) {
        texts[choice.index] += choice.delta.content ?? '';
        if (choice.finish_reason) finished.push(choice.index);
      }
      usage ??= chunk.usage ?? undefined;
    }
    expect(texts).toEqual(completion.choices.map((c) => c.message.content));
    expect(finished.sort()).toEqual([0, 1, 2]);
    expect(usage).toMatchObject({ prompt_tokens: completion.usage!.prompt_tokens, completion_tokens: completion.usage!.completion_tokens });
    // Text completions too.
    const text = await client.completions.create({ model: target.model, prompt: 'Once', max_tokens: 4, temperature: 0, n: 2 });
    expect(text.choices.map((c) => c.index)).toEqual([0, 1]);
    expect(text.choices[1]!.text).toBe(text.choices[0]!.text);
    const tooMany = await client.chat.completions.create({ ...request, n: 129 }).catch((e: unknown) => e);
    expect((tooMany as InstanceType<typeof OpenAI.BadRequestError>).error).toMatchObject({ param: 'n' });
  });

  it('completions batch: an array of prompts, n choices each, numbered prompt after prompt, streamed or not', async () => {
    const prompts = ['Once', 'Twice upon', 'Thrice upon a'];
    const singles = await Promise.all(prompts.map((prompt) => client.completions.create({ model: target.model, prompt, max_tokens: 4, temperature: 0 })));
    const batch = await client.completions.create({ model: target.model, prompt: prompts, max_tokens: 4, temperature: 0, n: 2 });
    expect(batch.choices.map((c) => c.index)).toEqual([0, 1, 2, 3, 4, 5]);
    expect(batch.choices.map((c) => c.text)).toEqual(singles.flatMap((single) => [single.choices[0]!.text, single.choices[0]!.text]));
    // Each prompt counted once, every choice's completion.
    expect(batch.usage!.prompt_tokens).toBe(singles.reduce((n, single) => n + single.usage!.prompt_tokens, 0));
    expect(batch.usage!.completion_tokens).toBe(2 * singles.reduce((n, single) => n + single.usage!.completion_tokens, 0));
    const stream = await client.completions.create({ model: target.model, prompt: prompts, max_tokens: 4, temperature: 0, stream: true, stream_options: { include_usage: true } });
    const texts = ['', '', ''];
    let usage: OpenAI.CompletionUsage | undefined;
    for await (const chunk of stream) {
      for (const choice of chunk.choices) texts[choice.index] += choice.text;
      usage ??= chunk.usage ?? undefined;
    }
    expect(texts).toEqual(singles.map((single) => single.choices[0]!.text));
    expect(usage!.prompt_tokens).toBe(batch.usage!.prompt_tokens);
    // Token ids are not served; a batch is bounded.
    for (const [prompt, param] of [[[1, 2, 3], 'prompt[0]'], [['text', [4, 5]], 'prompt[1]']] as const) {
      const refused = await client.completions.create({ model: target.model, prompt: prompt as never, max_tokens: 2 }).catch((e: unknown) => e);
      expect((refused as InstanceType<typeof OpenAI.BadRequestError>).error, JSON.stringify(prompt)).toMatchObject({ param, code: 'unsupported_value' });
    }
    const tooMany = await client.completions.create({ model: target.model, prompt: prompts, n: 50, max_tokens: 2 }).catch((e: unknown) => e);
    expect((tooMany as InstanceType<typeof OpenAI.BadRequestError>).error).toMatchObject({ param: 'n' });
  });

  it('turns an unknown model into a NotFoundError with the OpenAI error body', async () => {
    const error = await client.chat.completions
      .create({ model: 'no-such-model', messages: [{ role: 'user', content: 'x' }] })
      .catch((e: unknown) => e);
    expect(error).toBeInstanceOf(OpenAI.NotFoundError);
    expect((error as InstanceType<typeof OpenAI.NotFoundError>).error).toMatchObject({ code: 'model_not_found', param: 'model', type: 'invalid_request_error' });
  });

  it('response_format json_schema: JSON matching the schema in-process; passed on to an openai-compatible upstream', async () => {
    const schema = {
      type: 'object',
      properties: { answer: { type: 'string', enum: ['yes', 'no'] }, confidence: { type: 'number' } },
      required: ['answer', 'confidence'],
      additionalProperties: false,
    };
    const response_format = { type: 'json_schema' as const, json_schema: { name: 'verdict', schema, strict: true } };
    const request = { model: target.model, messages: [{ role: 'user' as const, content: 'Is the sky blue?' }], max_tokens: 60, temperature: 0, response_format };
    const completion = await client.chat.completions.create(request);
    const content = completion.choices[0]!.message.content ?? '';
    if (upstream) {
      // The fake upstream ignores it; what matters is that it got it as sent.
      const sent = upstream.requests.filter((r) => r.path.endsWith('/chat/completions')).at(-1)!.body as Record<string, unknown>;
      expect(sent['response_format']).toEqual(response_format);
    } else {
      const verdict = JSON.parse(content) as { answer: string; confidence: number };
      expect(['yes', 'no']).toContain(verdict.answer);
      expect(typeof verdict.confidence).toBe('number');
      expect(completion.choices[0]!.finish_reason).toBe('stop');
      // Streamed: the same JSON, in pieces.
      const stream = await client.chat.completions.create({ ...request, stream: true });
      let streamed = '';
      for await (const chunk of stream) streamed += chunk.choices[0]?.delta.content ?? '';
      expect(streamed).toBe(content);
    }
    const bad = await client.chat.completions
      .create({ model: target.model, messages: [{ role: 'user', content: 'x' }], response_format: { type: 'xml' } as never })
      .catch((e: unknown) => e);
    expect(bad).toBeInstanceOf(OpenAI.BadRequestError);
    expect((bad as InstanceType<typeof OpenAI.BadRequestError>).error).toMatchObject({ param: 'response_format.type' });
  });

  const weatherTool = {
    type: 'function' as const,
    function: { name: 'get_weather', description: 'Weather of a city', parameters: { type: 'object', properties: { city: { type: 'string' } }, required: ['city'] } },
  };
  const timeTool = { type: 'function' as const, function: { name: 'get_time', parameters: { type: 'object', properties: { zone: { type: 'string' } } } } };
  const question: OpenAI.ChatCompletionMessageParam[] = [{ role: 'user', content: 'What is the weather in Paris, and the time?' }];

  // Tool calling: refused where the provider cannot do it, served where it can.
  if (!target.tools) it('refuses tools with a BadRequestError on a model without tool calling', async () => {
    const error = await client.chat.completions.create({ model: target.model, messages: question, tools: [weatherTool] }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(OpenAI.BadRequestError);
    expect((error as InstanceType<typeof OpenAI.BadRequestError>).error).toMatchObject({ code: 'unsupported_parameter', param: 'tools', type: 'invalid_request_error' });
  });

  if (target.tools) it('returns tool calls, streamed or not, in the form the SDK reads', async () => {
    const request = { model: target.model, messages: question, tools: [weatherTool, timeTool], temperature: 0 };
    const completion = await client.chat.completions.create(request);
    const choice = completion.choices[0]!;
    expect(choice.finish_reason).toBe('tool_calls');
    expect(choice.message.content).toBeNull();
    const calls = choice.message.tool_calls ?? [];
    expect(calls.map((c) => (c.type === 'function' ? c.function.name : c.type))).toEqual(['get_weather', 'get_time']);
    for (const call of calls) {
      expect(call.id).toMatch(/^call_/);
      expect(call.type === 'function' && (JSON.parse(call.function.arguments) as unknown)).toEqual(expect.any(Object));
    }
    expect(upstream?.requests.at(-1)?.body).toMatchObject({ tools: [weatherTool, timeTool] });

    // The SDK's stream helper joins the tool call deltas into the same message.
    const stream = client.chat.completions.stream(request);
    const chunks: OpenAI.ChatCompletionChunk[] = [];
    stream.on('chunk', (chunk) => chunks.push(chunk));
    const final = await stream.finalChatCompletion();
    expect(final.choices[0]!.finish_reason).toBe('tool_calls');
    expect(final.choices[0]!.message.tool_calls).toEqual(calls);
    const pieces = chunks.flatMap((c) => c.choices[0]?.delta.tool_calls ?? []);
    expect(pieces.length).toBeGreaterThan(calls.length);
    expect(pieces[0]).toMatchObject({ index: 0, id: calls[0]!.id, type: 'function', function: { name: 'get_weather' } });

    // tool_choice naming one function, and parallel_tool_calls: false.
    const forced = await client.chat.completions.create({ ...request, tool_choice: { type: 'function', function: { name: 'get_time' } } });
    expect(forced.choices[0]!.message.tool_calls?.map((c) => c.type === 'function' && c.function.name)).toEqual(['get_time']);
    const single = await client.chat.completions.create({ ...request, parallel_tool_calls: false });
    expect(single.choices[0]!.message.tool_calls).toHaveLength(1);
    const none = await client.chat.completions.create({ ...request, tool_choice: 'none' });
    expect(none.choices[0]!.message.tool_calls).toBeUndefined();
    expect(typeof none.choices[0]!.message.content).toBe('string');
  });

  if (target.tools) it("runs the SDK's tool loop (runTools): calls, local functions, results sent back, final answer", async () => {
    for (const stream of [false, true]) {
      const called: string[] = [];
      const runner = client.chat.completions.runTools({
        model: target.model,
        messages: question,
        temperature: 0,
        stream,
        tools: [
          {
            type: 'function',
            function: {
              name: 'get_weather',
              parameters: weatherTool.function.parameters,
              parse: JSON.parse,
              function: (args: { city: string }) => {
                called.push(`weather:${args.city}`);
                return { temperature_c: 21 };
              },
            },
          },
          {
            type: 'function',
            function: {
              name: 'get_time',
              parameters: timeTool.function.parameters,
              parse: JSON.parse,
              function: () => {
                called.push('time');
                return '12:00';
              },
            },
          },
        ],
      } as never);
      const answer = await (runner as { finalContent(): Promise<string | null> }).finalContent();
      expect(called).toHaveLength(2);
      expect(typeof answer).toBe('string');
      expect(answer!.length).toBeGreaterThan(0);
      // The second upstream call carried the assistant's calls and both results.
      const messages = (upstream?.requests.at(-1)?.body as { messages: Array<Record<string, unknown>> }).messages;
      expect(messages.map((m) => m['role'])).toEqual(['user', 'assistant', 'tool', 'tool']);
      expect(messages[2]).toMatchObject({ tool_call_id: (messages[1]!['tool_calls'] as Array<{ id: string }>)[0]!.id, content: '{"temperature_c":21}' });
    }
  });

  it('honours logit_bias and the vLLM sampling extras (top_k, min_p, repetition_penalty), or passes them upstream', async () => {
    const messages: OpenAI.ChatCompletionMessageParam[] = [{ role: 'user', content: 'Say hello' }];
    // The tiny model's vocabulary: one token per byte, id = byte + 3 ('z' is 125).
    const extras = { top_k: 1, min_p: 0.5, repetition_penalty: 1.1 };
    const forced = await client.chat.completions.create({ model: target.model, messages, max_tokens: 4, temperature: 0, logit_bias: { '125': 100 }, ...extras } as never);
    if (upstream) {
      expect(upstream.requests.at(-1)?.body).toMatchObject({ logit_bias: { '125': 100 }, ...extras });
      return;
    }
    expect((forced as OpenAI.ChatCompletion).choices[0]!.message.content).toBe('zzzz');
    const completion = await client.completions.create({ model: target.model, prompt: 'Once', max_tokens: 4, temperature: 0, logit_bias: { '125': 100 } });
    expect(completion.choices[0]!.text).toBe('zzzz');
    const greedy = await client.chat.completions.create({ model: target.model, messages, max_tokens: 8, temperature: 0 });
    const topK = await client.chat.completions.create({ model: target.model, messages, max_tokens: 8, temperature: 1, seed: 7, top_k: 1 } as never);
    expect((topK as OpenAI.ChatCompletion).choices[0]!.message.content).toBe(greedy.choices[0]!.message.content);
    const bad = await client.chat.completions.create({ model: target.model, messages, logit_bias: { '100000': 5 } }).catch((e: unknown) => e);
    expect(bad).toBeInstanceOf(OpenAI.BadRequestError);
    expect((bad as InstanceType<typeof OpenAI.BadRequestError>).error).toMatchObject({ param: 'logit_bias.100000', type: 'invalid_request_error' });
  });

  if (!target.tools) it('reports prompt tokens reused from the prompt cache (usage.prompt_tokens_details.cached_tokens)', async () => {
    const system = 'You are a patient assistant for a lighthouse museum; answer in one sentence. '.repeat(3);
    const ask = (question: string) => ({
      model: target.model,
      messages: [
        { role: 'system' as const, content: system },
        { role: 'user' as const, content: question },
      ],
      max_tokens: 4,
      temperature: 0,
    });
    await client.chat.completions.create(ask('When was it built?'));
    const second = await client.chat.completions.create(ask('Who lived there?'));
    expect(second.usage!.prompt_tokens_details!.cached_tokens).toBeGreaterThan(system.length);
    expect(second.usage!.prompt_tokens_details!.cached_tokens).toBeLessThan(second.usage!.prompt_tokens);
    const stream = await client.chat.completions.create({ ...ask('Is it open?'), stream: true, stream_options: { include_usage: true } });
    let usage: OpenAI.CompletionUsage | undefined;
    for await (const chunk of stream) usage ??= chunk.usage ?? undefined;
    expect(usage!.prompt_tokens_details!.cached_tokens).toBeGreaterThan(system.length);
  });

  it('creates embeddings: unit vectors, the same for the same text, as floats or base64', async () => {
    const inputs = ['The food was delicious', 'The service was slow', 'The food was delicious'];
    // The SDK asks for base64 by default and decodes it.
    const res = await client.embeddings.create({ model: target.model, input: inputs });
    expect(res.object).toBe('list');
    expect(res.model).toBe(target.model);
    expect(res.data.map((d) => d.index)).toEqual([0, 1, 2]);
    const vectors = res.data.map((d) => d.embedding);
    const size = vectors[0]!.length;
    expect(size).toBe(target.tools ? 8 : 64);
    for (const v of vectors) {
      expect(v).toHaveLength(size);
      expect(Math.hypot(...v)).toBeCloseTo(1, 5);
    }
    expect(vectors[2]).toEqual(vectors[0]);
    expect(vectors[1]).not.toEqual(vectors[0]);
    expect(res.usage.prompt_tokens).toBeGreaterThan(0);
    expect(res.usage.total_tokens).toBe(res.usage.prompt_tokens);
    // Floats: the same vectors (float32 values), in JSON.
    const floats = await client.embeddings.create({ model: target.model, input: inputs[1]!, encoding_format: 'float' });
    expect(floats.data).toHaveLength(1);
    expect(floats.data[0]!.embedding.map(Math.fround)).toEqual(vectors[1]);
    const bad = await client.embeddings.create({ model: target.model, input: [''] }).catch((e: unknown) => e);
    expect(bad).toBeInstanceOf(OpenAI.BadRequestError);
    expect((bad as InstanceType<typeof OpenAI.BadRequestError>).error).toMatchObject({ param: 'input[0]' });
  });

  if (!target.logprobs) it('refuses logprobs with a BadRequestError on a model that cannot give them', async () => {
    const messages: OpenAI.ChatCompletionMessageParam[] = [{ role: 'user', content: 'Say hello' }];
    const chat = await client.chat.completions.create({ model: target.model, messages, logprobs: true }).catch((e: unknown) => e);
    expect(chat).toBeInstanceOf(OpenAI.BadRequestError);
    expect((chat as InstanceType<typeof OpenAI.BadRequestError>).error).toMatchObject({ param: 'logprobs', code: 'unsupported_parameter' });
    const completion = await client.completions.create({ model: target.model, prompt: 'Once', logprobs: 0 }).catch((e: unknown) => e);
    expect((completion as InstanceType<typeof OpenAI.BadRequestError>).error).toMatchObject({ param: 'logprobs', code: 'unsupported_parameter' });
    // logprobs: false asks for nothing: answered.
    const plain = await client.chat.completions.create({ model: target.model, messages, max_tokens: 3, logprobs: false });
    expect(plain.choices[0]!.logprobs ?? null).toBeNull();
  });

  if (target.logprobs) it('returns log probabilities in the form the SDK reads, streamed or not (chat and completions)', async () => {
    const request = { model: target.model, messages: [{ role: 'user' as const, content: 'Rate this' }], max_tokens: 5, temperature: 0, logprobs: true, top_logprobs: 2 };
    const completion = await client.chat.completions.create(request);
    const choice = completion.choices[0]!;
    const content = choice.logprobs?.content ?? [];
    expect(content).toHaveLength(completion.usage!.completion_tokens);
    expect(content.map((entry) => entry.token).join('')).toBe(choice.message.content);
    for (const entry of content) {
      expect(entry.logprob).toBeLessThanOrEqual(0);
      expect(entry.bytes).toEqual([...Buffer.from(entry.token)]);
      expect(entry.top_logprobs).toHaveLength(2);
      expect(entry.top_logprobs[0]).toMatchObject({ token: entry.token, logprob: entry.logprob });
      expect(entry.top_logprobs[1]!.logprob).toBeLessThan(entry.top_logprobs[0]!.logprob);
    }
    const sent = upstream!.requests.at(-1)!.body as Record<string, unknown>;
    expect(sent).toMatchObject({ logprobs: true, top_logprobs: 2 });
    // Streamed: each chunk carries the entries of its tokens; together, the same entries.
    const stream = await client.chat.completions.create({ ...request, stream: true });
    const streamed: OpenAI.ChatCompletionTokenLogprob[] = [];
    for await (const chunk of stream) streamed.push(...(chunk.choices[0]?.logprobs?.content ?? []));
    expect(streamed).toEqual(content);
    // Without logprobs: null, and nothing asked upstream.
    const plain = await client.chat.completions.create({ ...request, logprobs: false, top_logprobs: undefined });
    expect(plain.choices[0]!.logprobs).toBeNull();
    expect(upstream!.requests.at(-1)!.body).not.toHaveProperty('logprobs');

    // Text completions: the legacy arrays.
    const text = await client.completions.create({ model: target.model, prompt: 'Once upon a time', max_tokens: 4, temperature: 0, logprobs: 2 });
    const legacy = text.choices[0]!.logprobs!;
    expect(legacy.tokens!.join('')).toBe(text.choices[0]!.text);
    expect(legacy.token_logprobs).toHaveLength(4);
    expect(legacy.top_logprobs!.map((top) => Object.keys(top))).toEqual(legacy.tokens!.map((token) => [token, expect.any(String)]));
    let offset = 0;
    expect(legacy.text_offset).toEqual(legacy.tokens!.map((token) => ((offset += token.length), offset - token.length)));
    expect(upstream!.requests.at(-1)!.body).toMatchObject({ logprobs: 2 });
    const textStream = await client.completions.create({ model: target.model, prompt: 'Once upon a time', max_tokens: 4, temperature: 0, logprobs: 2, stream: true });
    const pieces: Array<{ tokens: string[]; text_offset: number[] }> = [];
    for await (const chunk of textStream) {
      const lp = chunk.choices[0]?.logprobs;
      if (lp) pieces.push({ tokens: lp.tokens ?? [], text_offset: lp.text_offset ?? [] });
    }
    expect(pieces.flatMap((p) => p.tokens)).toEqual(legacy.tokens);
    expect(pieces.flatMap((p) => p.text_offset)).toEqual(legacy.text_offset);

    // top_logprobs without logprobs, or over 20: 400.
    const orphan = await client.chat.completions.create({ ...request, logprobs: undefined }).catch((e: unknown) => e);
    expect((orphan as InstanceType<typeof OpenAI.BadRequestError>).error).toMatchObject({ param: 'top_logprobs' });
    const tooMany = await client.chat.completions.create({ ...request, top_logprobs: 21 }).catch((e: unknown) => e);
    expect(tooMany).toBeInstanceOf(OpenAI.BadRequestError);
  });

  it('answers GET /predict with {"result": "..."}', async () => {
    const res = await fetch(`${server.url}/predict?input_text=${encodeURIComponent('Once upon a time')}`);
    expect(res.status).toBe(200);
    const body = (await res.json()) as { result: unknown };
    expect(Object.keys(body)).toEqual(['result']);
    expect(typeof body.result).toBe('string');
    expect((body.result as string).length).toBeGreaterThan(0);
  });
});
