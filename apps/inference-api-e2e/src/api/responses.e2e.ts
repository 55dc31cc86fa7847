import OpenAI from 'openai';
import { type FakeUpstream, startFakeUpstream } from '@infer/model-providers/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type ApiServer, startApiServer } from '../support/api-server.js';
import { fakeModelsYaml } from '../support/load.js';

/**
 * POST /v1/responses with the official `openai` client (client.responses.create / .stream), against
 * real server processes: the built-in llama.cpp model, an openai-compatible provider to a fake
 * upstream (tool calling), and the same with the response cache on.
 */

type Response = OpenAI.Responses.Response;
type Event = OpenAI.Responses.ResponseStreamEvent;

/** The text of a response's message items (what the SDK's `output_text` is; the stream helper does not add it). */
function textOf(response: Response): string {
  let text = '';
  for (const item of response.output) {
    if (item.type !== 'message') continue;
    for (const part of item.content) if (part.type === 'output_text') text += part.text;
  }
  return text;
}

/** Every event of a streamed response, checking the numbering; the last one must end the stream. */
async function collect(stream: AsyncIterable<Event>): Promise<Event[]> {
  const events: Event[] = [];
  for await (const event of stream) events.push(event);
  expect(events.map((e) => e.sequence_number)).toEqual(events.map((_, i) => i));
  return events;
}

const deltasOf = (events: readonly Event[]) => events.flatMap((e) => (e.type === 'response.output_text.delta' ? [e.delta] : [])).join('');

async function badRequest(promise: Promise<unknown>): Promise<{ param?: string | null; code?: string | null; message?: string }> {
  const error = await promise.catch((e: unknown) => e);
  expect(error).toBeInstanceOf(OpenAI.BadRequestError);
  return (error as InstanceType<typeof OpenAI.BadRequestError>).error as { param?: string | null; code?: string | null };
}

describe('Responses API on the built-in llama.cpp model', () => {
  const model = 'tiny-llama';
  let server: ApiServer;
  let client: OpenAI;

  beforeAll(async () => {
    server = await startApiServer({ env: { CACHE_ENABLED: 'false' } });
    client = new OpenAI({ baseURL: `${server.url}/v1`, apiKey: 'test-key', maxRetries: 0 });
  });

  afterAll(async () => {
    await server?.stop();
  });

  it('creates a response whose output_text is the chat answer to the same conversation', async () => {
    const response = await client.responses.create({ model, instructions: 'Answer briefly.', input: 'Say hello', max_output_tokens: 12, temperature: 0, metadata: { ticket: 't-1' } });
    const chat = await client.chat.completions.create({
      model,
      messages: [
        { role: 'system', content: 'Answer briefly.' },
        { role: 'user', content: 'Say hello' },
      ],
      max_tokens: 12,
      temperature: 0,
    });
    expect(response.object).toBe('response');
    expect(response.id).toMatch(/^resp_[0-9a-f]+$/);
    expect(response.model).toBe(model);
    expect(response.output_text).toBe(chat.choices[0]!.message.content);
    expect(response.output_text.length).toBeGreaterThan(0);
    expect(response.status).toBe(chat.choices[0]!.finish_reason === 'length' ? 'incomplete' : 'completed');
    expect(response.usage).toMatchObject({
      input_tokens: chat.usage!.prompt_tokens,
      output_tokens: chat.usage!.completion_tokens,
      total_tokens: chat.usage!.total_tokens,
      output_tokens_details: { reasoning_tokens: 0 },
    });
    expect(response.usage!.input_tokens_details.cached_tokens).toEqual(expect.any(Number));
    const message = response.output[0]!;
    expect(message).toMatchObject({ type: 'message', role: 'assistant', content: [{ type: 'output_text', annotations: [] }] });
    expect(message.id).toMatch(/^msg_/);
    // The echoed request.
    expect(response).toMatchObject({
      instructions: 'Answer briefly.',
      max_output_tokens: 12,
      temperature: 0,
      metadata: { ticket: 't-1' },
      tools: [],
      tool_choice: 'auto',
      store: true,
      previous_response_id: null,
      error: null,
    });
  });

  it('is incomplete when max_output_tokens cuts the output', async () => {
    const response = await client.responses.create({ model, input: 'Tell me a long story', max_output_tokens: 4, temperature: 0 });
    expect(response.status).toBe('incomplete');
    expect(response.incomplete_details).toEqual({ reason: 'max_output_tokens' });
    expect(response.usage!.output_tokens).toBe(4);
    expect(response.output[0]).toMatchObject({ type: 'message', status: 'incomplete' });
  });

  it('takes message items with text parts, the same conversation as chat messages', async () => {
    const input: OpenAI.Responses.ResponseInput = [
      { role: 'developer', content: 'Be kind.' },
      { role: 'user', content: [{ type: 'input_text', text: 'Hello, ' }, { type: 'input_text', text: 'who are you?' }] },
      { type: 'message', role: 'assistant', content: 'A lighthouse keeper.' },
      { type: 'message', role: 'user', content: [{ type: 'input_text', text: 'Where?' }] },
    ];
    const response = await client.responses.create({ model, input, max_output_tokens: 8, temperature: 0 });
    const chat = await client.chat.completions.create({
      model,
      messages: [
        { role: 'developer', content: 'Be kind.' },
        { role: 'user', content: 'Hello, who are you?' },
        { role: 'assistant', content: 'A lighthouse keeper.' },
        { role: 'user', content: 'Where?' },
      ],
      max_tokens: 8,
      temperature: 0,
    });
    expect(response.output_text).toBe(chat.choices[0]!.message.content);
  });

  it('streams events whose deltas join to the output text, numbered, ending with the whole response', async () => {
    const request = { model, input: 'Count with me', max_output_tokens: 10, temperature: 0 };
    const whole = await client.responses.create(request);
    const events = await collect(await client.responses.create({ ...request, stream: true }));
    const types = events.map((e) => e.type);
    expect(types.slice(0, 4)).toEqual(['response.created', 'response.in_progress', 'response.output_item.added', 'response.content_part.added']);
    expect(types.slice(-4)).toEqual(['response.output_text.done', 'response.content_part.done', 'response.output_item.done', `response.${whole.status}`]);
    expect(types.filter((t) => t === 'response.output_text.delta').length).toBeGreaterThan(1);
    expect(deltasOf(events)).toBe(whole.output_text);
    const created = events[0] as OpenAI.Responses.ResponseCreatedEvent;
    expect(created.response).toMatchObject({ status: 'in_progress', output: [], model });
    const last = events.at(-1) as OpenAI.Responses.ResponseCompletedEvent;
    expect(last.response.id).toBe(created.response.id);
    expect(textOf(last.response)).toBe(whole.output_text);
    expect(last.response.usage).toMatchObject({ input_tokens: whole.usage!.input_tokens, output_tokens: whole.usage!.output_tokens });
    const done = events.find((e) => e.type === 'response.output_text.done') as OpenAI.Responses.ResponseTextDoneEvent;
    expect(done.text).toBe(whole.output_text);
  });

  it("serves the SDK's stream helper (responses.stream): text events and finalResponse()", async () => {
    const request = { model, input: 'Say hello', max_output_tokens: 20, temperature: 0 };
    const whole = await client.responses.create(request);
    const stream = client.responses.stream(request);
    let snapshot = '';
    let ended: Response | undefined;
    stream.on('response.output_text.delta', (event) => (snapshot = event.snapshot));
    stream.on('response.completed', (event) => (ended = event.response));
    stream.on('response.incomplete', (event) => (ended = event.response));
    const final = await stream.finalResponse();
    expect(textOf(final)).toBe(whole.output_text);
    expect(snapshot).toBe(whole.output_text);
    // (The helper's own snapshot takes the final response from `response.completed` only.)
    expect(ended?.status).toBe(whole.status);
    expect(textOf(ended!)).toBe(whole.output_text);
  });

  it('honours text.format json_schema: JSON matching the schema, streamed or not', async () => {
    const schema = {
      type: 'object',
      properties: { answer: { type: 'string', enum: ['yes', 'no'] }, confidence: { type: 'number' } },
      required: ['answer', 'confidence'],
      additionalProperties: false,
    };
    const request = {
      model,
      input: 'Is the sky blue?',
      max_output_tokens: 60,
      temperature: 0,
      text: { format: { type: 'json_schema' as const, name: 'verdict', schema, strict: true } },
    };
    const response = await client.responses.create(request);
    expect(response.status).toBe('completed');
    const verdict = JSON.parse(response.output_text) as { answer: string; confidence: number };
    expect(['yes', 'no']).toContain(verdict.answer);
    expect(typeof verdict.confidence).toBe('number');
    expect(response.text).toMatchObject({ format: { type: 'json_schema', name: 'verdict' } });
    const events = await collect(await client.responses.create({ ...request, stream: true }));
    expect(deltasOf(events)).toBe(response.output_text);
    // The SDK parses it too.
    const parsed = await client.responses.parse(request);
    expect(parsed.output_parsed).toEqual(verdict);
  });

  it('refuses tools on a model without tool calling (400), in the request or in the history', async () => {
    const tools: OpenAI.Responses.Tool[] = [{ type: 'function', name: 'get_weather', parameters: { type: 'object', properties: {} }, strict: false }];
    expect(await badRequest(client.responses.create({ model, input: 'Weather?', tools }))).toMatchObject({ param: 'tools', code: 'unsupported_parameter' });
    const history: OpenAI.Responses.ResponseInput = [
      { role: 'user', content: 'Weather?' },
      { type: 'function_call', call_id: 'call_1', name: 'get_weather', arguments: '{}' },
      { type: 'function_call_output', call_id: 'call_1', output: 'sunny' },
    ];
    expect(await badRequest(client.responses.create({ model, input: history }))).toMatchObject({ param: 'input', code: 'unsupported_parameter' });
    // tool_choice "none" asks for text: answered without the tools.
    const none = await client.responses.create({ model, input: 'Weather?', tools, tool_choice: 'none', max_output_tokens: 4 });
    expect(none.output_text.length).toBeGreaterThan(0);
  });

  it('refuses what it does not serve, or an unknown previous response, with a 400 naming the field', async () => {
    const cases: Array<[Record<string, unknown>, string]> = [
      [{ conversation: 'conv_123' }, 'conversation'],
      [{ include: ['message.output_text.logprobs'] }, 'include'],
      [{ reasoning: { effort: 'low' } }, 'reasoning'],
      [{ tools: [{ type: 'web_search' }] }, 'tools[0].type'],
      [{ input: [{ role: 'user', content: [{ type: 'input_image', image_url: 'https://example.com/a.png', detail: 'auto' }] }] }, 'input[0].content[0].type'],
      [{ input: [{ type: 'reasoning', id: 'rs_1', summary: [] }] }, 'input[0].type'],
      [{ max_tokens: 5 }, 'max_tokens'],
      [{ text: { format: { type: 'xml' } } }, 'text.format.type'],
    ];
    for (const [fields, param] of cases) {
      const error = await badRequest(client.responses.create({ model, input: 'Hi', ...fields } as never));
      expect(error.param, JSON.stringify(fields)).toBe(param);
    }
    // An unknown previous response (stored responses: stored-responses.e2e.ts).
    expect(await badRequest(client.responses.create({ model, input: 'Hi', previous_response_id: 'resp_123' }))).toMatchObject({
      param: 'previous_response_id',
      code: 'previous_response_not_found',
    });
    const missing = await client.responses.create({ model: 'no-such-model', input: 'Hi' }).catch((e: unknown) => e);
    expect(missing).toBeInstanceOf(OpenAI.NotFoundError);
  });

  it('speaks plain SSE with event lines and no [DONE]', async () => {
    const res = await fetch(`${server.url}/v1/responses`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ model, input: 'Hi', max_output_tokens: 3, temperature: 0, stream: true }),
    });
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toMatch(/^text\/event-stream/);
    const text = await res.text();
    expect(text).not.toContain('[DONE]');
    const frames = text.split('\n\n').filter((f) => f !== '');
    for (const frame of frames) {
      const [event, data] = frame.split('\n');
      expect(event).toMatch(/^event: /);
      expect((JSON.parse(data!.slice('data: '.length)) as { type: string }).type).toBe(event!.slice('event: '.length));
    }
  });
});

describe('Responses API through an openai-compatible upstream (function calling)', () => {
  const model = 'fake-chat';
  let server: ApiServer;
  let upstream: FakeUpstream;
  let client: OpenAI;

  beforeAll(async () => {
    upstream = await startFakeUpstream({ tokens: 12, models: ['upstream-model'] });
    server = await startApiServer({ env: { CACHE_ENABLED: 'false' }, modelsYaml: fakeModelsYaml(upstream.url, model, { upstreamModel: 'upstream-model' }) });
    client = new OpenAI({ baseURL: `${server.url}/v1`, apiKey: 'test-key', maxRetries: 0 });
  });

  afterAll(async () => {
    await server?.stop();
    await upstream?.close();
  });

  const weather = { type: 'function' as const, name: 'get_weather', description: 'Weather of a city', parameters: { type: 'object', properties: { city: { type: 'string' } }, required: ['city'] }, strict: false };
  const time = { type: 'function' as const, name: 'get_time', parameters: { type: 'object', properties: { zone: { type: 'string' } } }, strict: null };
  const lastChatBody = () => upstream.requests.filter((r) => r.path.endsWith('/chat/completions')).at(-1)!.body as Record<string, unknown>;

  it('answers function_call items; the calls and their outputs sent back in input get a text answer', async () => {
    const question: OpenAI.Responses.ResponseInput = [{ role: 'user', content: 'What is the weather in Paris, and the time?' }];
    const response = await client.responses.create({ model, input: question, tools: [weather, time], temperature: 0 });
    expect(response.status).toBe('completed');
    expect(response.output_text).toBe('');
    const calls = response.output.filter((item): item is OpenAI.Responses.ResponseFunctionToolCall => item.type === 'function_call');
    expect(calls).toHaveLength(2);
    expect(response.output).toHaveLength(2);
    expect(calls.map((c) => c.name)).toEqual(['get_weather', 'get_time']);
    for (const call of calls) {
      expect(call.id).toMatch(/^fc_/);
      expect(call.call_id).toMatch(/^call_/);
      expect(call.status).toBe('completed');
      expect(JSON.parse(call.arguments)).toEqual(expect.any(Object));
    }
    // The upstream got a chat request with chat tools.
    expect(lastChatBody()).toMatchObject({
      model: 'upstream-model',
      messages: [{ role: 'user', content: 'What is the weather in Paris, and the time?' }],
      tools: [
        { type: 'function', function: { name: 'get_weather', description: 'Weather of a city', parameters: weather.parameters, strict: false } },
        { type: 'function', function: { name: 'get_time', parameters: time.parameters } },
      ],
    });
    expect(response.tools.map((t) => t.type === 'function' && t.name)).toEqual(['get_weather', 'get_time']);

    // Second turn: the output items as they came, then one output per call.
    const followUp = await client.responses.create({
      model,
      tools: [weather, time],
      temperature: 0,
      input: [...question, ...response.output, ...calls.map((c) => ({ type: 'function_call_output' as const, call_id: c.call_id, output: c.name === 'get_weather' ? '{"temperature_c":21}' : '12:00' }))],
    });
    expect(followUp.output.map((item) => item.type)).toEqual(['message']);
    expect(followUp.output_text.length).toBeGreaterThan(0);
    const messages = lastChatBody()['messages'] as Array<Record<string, unknown>>;
    expect(messages.map((m) => m['role'])).toEqual(['user', 'assistant', 'tool', 'tool']);
    expect((messages[1]!['tool_calls'] as Array<{ id: string }>).map((c) => c.id)).toEqual(calls.map((c) => c.call_id));
    expect(messages[2]).toMatchObject({ tool_call_id: calls[0]!.call_id, content: '{"temperature_c":21}' });
  });

  it('streams function calls: added items, argument deltas, done events; the stream helper gets the same calls', async () => {
    const request = { model, input: 'Weather in Paris and the time?', tools: [weather, time], temperature: 0 };
    const whole = await client.responses.create(request);
    const events = await collect(await client.responses.create({ ...request, stream: true }));
    const types = events.map((e) => e.type);
    expect(types.filter((t) => t === 'response.output_item.added')).toHaveLength(2);
    expect(types.filter((t) => t === 'response.function_call_arguments.delta').length).toBeGreaterThan(2);
    expect(types.filter((t) => t === 'response.function_call_arguments.done')).toHaveLength(2);
    expect(types.at(-1)).toBe('response.completed');
    const argsDone = events.filter((e): e is OpenAI.Responses.ResponseFunctionCallArgumentsDoneEvent => e.type === 'response.function_call_arguments.done');
    const wholeCalls = whole.output.filter((item): item is OpenAI.Responses.ResponseFunctionToolCall => item.type === 'function_call');
    expect(argsDone.map((e) => [e.name, e.arguments])).toEqual(wholeCalls.map((c) => [c.name, c.arguments]));

    const final = await client.responses.stream(request).finalResponse();
    const finalCalls = final.output.flatMap((item) => (item.type === 'function_call' ? [item] : []));
    expect(finalCalls.map((c) => [c.name, c.arguments, c.status])).toEqual(wholeCalls.map((c) => [c.name, c.arguments, 'completed']));
  });

  it('passes tool_choice and parallel_tool_calls on', async () => {
    const forced = await client.responses.create({ model, input: 'Time?', tools: [weather, time], tool_choice: { type: 'function', name: 'get_time' } });
    expect(forced.output.map((item) => item.type === 'function_call' && item.name)).toEqual(['get_time']);
    expect(lastChatBody()['tool_choice']).toEqual({ type: 'function', function: { name: 'get_time' } });
    expect(forced.tool_choice).toEqual({ type: 'function', name: 'get_time' });
    const single = await client.responses.create({ model, input: 'Both?', tools: [weather, time], parallel_tool_calls: false });
    expect(single.output).toHaveLength(1);
    expect(single.parallel_tool_calls).toBe(false);
    const none = await client.responses.create({ model, input: 'Both?', tools: [weather, time], tool_choice: 'none' });
    expect(none.output.map((item) => item.type)).toEqual(['message']);
  });

  it('echoes user and metadata; passes user upstream, not metadata', async () => {
    const response = await client.responses.create({ model, input: 'Hi', user: 'user-7', metadata: { ticket: 'T-9' } });
    expect(response).toMatchObject({ user: 'user-7', metadata: { ticket: 'T-9' } });
    expect(lastChatBody()).toMatchObject({ user: 'user-7' });
    expect(lastChatBody()).not.toHaveProperty('metadata');
  });

  it('an upstream failure mid-stream: an error event, then response.failed, and the stream ends', async () => {
    upstream.configure({ failNext: { mode: 'reset-mid-stream' } });
    const events = await collect(await client.responses.create({ model, input: 'Tell me more', stream: true }));
    expect(events.at(-2)).toMatchObject({ type: 'error', message: expect.any(String) });
    expect(events.at(-1)).toMatchObject({ type: 'response.failed', response: { status: 'failed', error: { code: 'server_error' } } });
    // The stream helper rejects rather than answering a partial response.
    upstream.configure({ failNext: { mode: 'reset-mid-stream' } });
    const failed = await client.responses
      .stream({ model, input: 'Tell me more' })
      .finalResponse()
      .catch((e: unknown) => e);
    expect(failed).toMatchObject({ type: 'error' });
    // An upstream error before the stream started is an ordinary HTTP error.
    upstream.configure({ failNext: { status: 400, body: { error: { message: 'bad things', type: 'invalid_request_error', param: null, code: null } } } });
    const early = await client.responses.create({ model, input: 'Hi', stream: true }).catch((e: unknown) => e);
    expect(early).toBeInstanceOf(OpenAI.BadRequestError);
  });

  it('a client that leaves mid-stream stops the upstream stream', async () => {
    upstream.reset();
    upstream.configure({ tokens: 200, interTokenDelayMs: 20 });
    try {
      const started = Date.now();
      const stream = await client.responses.create({ model, input: 'A long story', stream: true });
      let deltas = 0;
      for await (const event of stream) {
        if (event.type === 'response.output_text.delta' && ++deltas === 3) break; // the SDK aborts the request
      }
      await upstream.waitForAbort({ count: 1, timeoutMs: 2_000 });
      expect(upstream.abortedStreams).toBe(1);
      expect(Date.now() - started).toBeLessThan(3_000);
    } finally {
      upstream.reset();
    }
  });
});

describe('Responses API with the response cache on', () => {
  let server: ApiServer;
  let upstream: FakeUpstream;
  let client: OpenAI;

  beforeAll(async () => {
    upstream = await startFakeUpstream({ tokens: 12 });
    server = await startApiServer({ env: { CACHE_ENABLED: 'true' }, modelsYaml: fakeModelsYaml(upstream.url, 'm') });
    client = new OpenAI({ baseURL: `${server.url}/v1`, apiKey: 'test-key', maxRetries: 0 });
  });

  afterAll(async () => {
    await server?.stop();
    await upstream?.close();
  });

  it('x-cache MISS then HIT for a temperature-0 request, streamed too, shared with the identical chat request', async () => {
    const request = { model: 'm', input: 'Cache me', instructions: 'Be brief.', max_output_tokens: 8, temperature: 0 };
    const before = upstream.requestCount;
    const first = await client.responses.create(request).withResponse();
    expect(first.response.headers.get('x-cache')).toBe('MISS');
    const second = await client.responses.create(request).withResponse();
    expect(second.response.headers.get('x-cache')).toBe('HIT');
    expect(second.data.output_text).toBe(first.data.output_text);
    expect(second.data.id).not.toBe(first.data.id);
    const streamed = await client.responses.create({ ...request, stream: true }).withResponse();
    expect(streamed.response.headers.get('x-cache')).toBe('HIT');
    expect(deltasOf(await collect(streamed.data))).toBe(first.data.output_text);
    const chat = await client.chat.completions
      .create({ model: 'm', messages: [{ role: 'system', content: 'Be brief.' }, { role: 'user', content: 'Cache me' }], max_tokens: 8, temperature: 0 })
      .withResponse();
    expect(chat.response.headers.get('x-cache')).toBe('HIT');
    expect(chat.data.choices[0]!.message.content).toBe(first.data.output_text);
    expect(upstream.requestCount - before).toBe(1);
    // Sampled requests are not cached.
    const sampled = await client.responses.create({ ...request, temperature: 0.7 }).withResponse();
    expect(sampled.response.headers.get('x-cache')).toBe('BYPASS');
  });
});
