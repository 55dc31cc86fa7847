import OpenAI from 'openai';
import { type FakeUpstream, startFakeUpstream } from '@infer/model-providers/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type ApiServer, startApiServer } from '../support/api-server.js';
import { fakeModelsYaml } from '../support/load.js';
import { apiError, lastChatMessages } from '../support/openai-errors.js';
import { type RedisServer, startRedisServer } from '../support/redis-server.js';

/**
 * Stored responses of the Responses API (`store`, `previous_response_id`, GET/DELETE
 * /v1/responses/{id}, input_items) with the official `openai` client, against real server processes
 * on a fake upstream: the in-process store, API-key scoping, the store disabled, and Redis shared by
 * two processes (a real redis-server), including Redis going away.
 */

type Response = OpenAI.Responses.Response;



/** `store` of a Response (the SDK's type leaves it out). */
const storeOf = (response: Response): boolean => (response as unknown as { store: boolean }).store;


describe('stored responses (in-process store)', () => {
  let server: ApiServer;
  let upstream: FakeUpstream;
  let client: OpenAI;

  beforeAll(async () => {
    upstream = await startFakeUpstream({ tokens: 6 });
    server = await startApiServer({ env: { CACHE_ENABLED: 'false' }, modelsYaml: fakeModelsYaml(upstream.url, 'm') });
    client = new OpenAI({ baseURL: `${server.url}/v1`, apiKey: 'test-key', maxRetries: 0 });
  });

  afterAll(async () => {
    await server?.stop();
    await upstream?.close();
  });

  it('stores by default: GET /v1/responses/{id} returns the response as it was answered', async () => {
    const created = await client.responses.create({ model: 'm', instructions: 'Be brief.', input: 'Hello there', max_output_tokens: 6, metadata: { t: '1' } });
    expect(storeOf(created)).toBe(true);
    expect(created.previous_response_id).toBeNull();
    const retrieved = await client.responses.retrieve(created.id);
    expect(retrieved).toEqual(created);
    expect(retrieved.output_text).toBe(created.output_text);
  });

  it('previous_response_id continues the conversation: earlier input and output go before the new input, instructions do not carry over', async () => {
    const first = await client.responses.create({ model: 'm', instructions: 'Be brief.', input: 'My name is Ada.', temperature: 0 });
    const second = await client.responses.create({ model: 'm', input: 'What is my name?', previous_response_id: first.id, temperature: 0 });
    expect(second.previous_response_id).toBe(first.id);
    expect(second.instructions).toBeNull();
    expect(lastChatMessages(upstream)).toEqual([
      { role: 'user', content: 'My name is Ada.' },
      { role: 'assistant', content: first.output_text },
      { role: 'user', content: 'What is my name?' },
    ]);
    // A third turn sees all of it, with its own instructions first.
    const third = await client.responses.create({ model: 'm', instructions: 'Answer in French.', input: [{ role: 'user', content: 'And again?' }], previous_response_id: second.id });
    expect(lastChatMessages(upstream)).toEqual([
      { role: 'system', content: 'Answer in French.' },
      { role: 'user', content: 'My name is Ada.' },
      { role: 'assistant', content: first.output_text },
      { role: 'user', content: 'What is my name?' },
      { role: 'assistant', content: second.output_text },
      { role: 'user', content: 'And again?' },
    ]);

    // input_items: the whole conversation the model was given (instructions excluded), newest first, with ids.
    const page = await client.responses.inputItems.list(third.id);
    const items = page.data as Array<{ id: string; type: string; role?: string; content?: Array<{ type: string; text: string }> }>;
    expect(items.map((i) => [i.role, i.content?.[0]?.text])).toEqual([
      ['user', 'And again?'],
      ['assistant', second.output_text],
      ['user', 'What is my name?'],
      ['assistant', first.output_text],
      ['user', 'My name is Ada.'],
    ]);
    expect(items[0]!.content![0]!.type).toBe('input_text');
    expect(items[1]!.id).toBe(second.output[0]!.id);
    for (const item of items) expect(item.id).toMatch(/^msg_/);
    // Paged with the SDK's cursor (after = the last id of a page), oldest first.
    const asc: string[] = [];
    for await (const item of client.responses.inputItems.list(third.id, { limit: 2, order: 'asc' })) asc.push(item.id);
    expect(asc).toEqual(items.map((i) => i.id).reverse());
    const res = await fetch(`${server.url}/v1/responses/${third.id}/input_items?limit=2`);
    expect(await res.json()).toMatchObject({ object: 'list', first_id: items[0]!.id, last_id: items[1]!.id, has_more: true });
  });

  it('continues a function call: the stored call and the new function_call_output reach the model as chat tool messages', async () => {
    const weather = { type: 'function' as const, name: 'get_weather', parameters: { type: 'object', properties: { city: { type: 'string' } } }, strict: false };
    const asked = await client.responses.create({ model: 'm', input: 'Weather in Paris?', tools: [weather], tool_choice: 'required' });
    const call = asked.output.find((item): item is OpenAI.Responses.ResponseFunctionToolCall => item.type === 'function_call');
    expect(call).toBeDefined();
    const answered = await client.responses.create({
      model: 'm',
      tools: [weather],
      previous_response_id: asked.id,
      input: [{ type: 'function_call_output', call_id: call!.call_id, output: '{"temperature_c":21}' }],
    });
    expect(answered.status).toBe('completed');
    const messages = lastChatMessages(upstream);
    expect(messages).toHaveLength(3);
    expect(messages[0]).toEqual({ role: 'user', content: 'Weather in Paris?' });
    expect(messages[1]).toMatchObject({ role: 'assistant', tool_calls: [{ id: call!.call_id, type: 'function', function: { name: 'get_weather', arguments: call!.arguments } }] });
    expect(messages[2]).toEqual({ role: 'tool', tool_call_id: call!.call_id, content: '{"temperature_c":21}' });
    const items = (await client.responses.inputItems.list(answered.id, { order: 'asc' })).data;
    expect(items.map((i) => i.type)).toEqual(['message', 'function_call', 'function_call_output']);
    expect(items[2]!.id).toMatch(/^fco_/);
  });

  it('stores a streamed response before its last event, and continues it', async () => {
    const stream = await client.responses.create({ model: 'm', input: 'Stream me', stream: true, temperature: 0 });
    let completed: Response | undefined;
    for await (const event of stream) if (event.type === 'response.completed') completed = event.response;
    expect(storeOf(completed!)).toBe(true);
    // Retrievable as soon as the stream has said it is complete (the SDK adds output_text to what it retrieves).
    const { output_text: text, ...retrieved } = await client.responses.retrieve(completed!.id);
    expect(retrieved).toEqual(completed);
    expect(text.length).toBeGreaterThan(0);
    const next = await client.responses.stream({ model: 'm', input: 'More', previous_response_id: completed!.id, temperature: 0 }).finalResponse();
    expect(next.previous_response_id).toBe(completed!.id);
    expect(lastChatMessages(upstream).map((m) => m.content)).toEqual(['Stream me', text, 'More']);
  });

  it('store: false is not stored; DELETE removes a stored one; unknown ids are 404 / 400 previous_response_not_found', async () => {
    const unstored = await client.responses.create({ model: 'm', input: 'Forget me', store: false });
    expect(storeOf(unstored)).toBe(false);
    let error = await apiError(client.responses.retrieve(unstored.id), OpenAI.NotFoundError);
    expect(error).toEqual({ message: `Response with id '${unstored.id}' not found.`, type: 'invalid_request_error', param: null, code: null });

    const stored = await client.responses.create({ model: 'm', input: 'Delete me' });
    const deleted = await fetch(`${server.url}/v1/responses/${stored.id}`, { method: 'DELETE' });
    expect(deleted.status).toBe(200);
    expect(await deleted.json()).toEqual({ id: stored.id, object: 'response', deleted: true });
    await apiError(client.responses.retrieve(stored.id), OpenAI.NotFoundError);
    await apiError(client.responses.delete(stored.id), OpenAI.NotFoundError);
    await apiError(client.responses.inputItems.list(stored.id), OpenAI.NotFoundError);

    error = await apiError(client.responses.create({ model: 'm', input: 'Hi', previous_response_id: stored.id }), OpenAI.BadRequestError);
    expect(error).toEqual({ message: `Previous response with id '${stored.id}' not found.`, type: 'invalid_request_error', param: 'previous_response_id', code: 'previous_response_not_found' });
    // Streamed: the same 400, before any event.
    error = await apiError(client.responses.create({ model: 'm', input: 'Hi', previous_response_id: 'resp_nope', stream: true }), OpenAI.BadRequestError);
    expect(error.code).toBe('previous_response_not_found');
  });

  it('streams a stored response again (GET ?stream=true): its events, ending with the response as stored', async () => {
    const stored = await client.responses.create({ model: 'm', input: 'Stream me again' });
    const events: Array<{ type: string; sequence_number: number; response?: unknown; delta?: string }> = [];
    for await (const event of await client.responses.retrieve(stored.id, { stream: true })) events.push(event as never);
    expect(events.map((e) => e.type)).toEqual([
      'response.created',
      'response.in_progress',
      'response.output_item.added',
      'response.content_part.added',
      'response.output_text.delta',
      'response.output_text.done',
      'response.content_part.done',
      'response.output_item.done',
      'response.completed',
    ]);
    expect(events[4]!.delta).toBe(stored.output_text);
    const { output_text: _text, ...asStored } = stored;
    expect(events.at(-1)!.response).toEqual(asStored);
    // Query strings are checked: starting_after is a sequence number.
    expect((await fetch(`${server.url}/v1/responses/${stored.id}?stream=true&starting_after=x`)).status).toBe(400);
  });

  it('refuses what it cannot serve on the stored routes with a clear 400', async () => {
    const stored = await client.responses.create({ model: 'm', input: 'Hi' });
    const limit = await fetch(`${server.url}/v1/responses/${stored.id}/input_items?limit=500`);
    expect(limit.status).toBe(400);
    expect(await limit.json()).toMatchObject({ error: { type: 'invalid_request_error', param: 'limit', message: expect.stringContaining('from 1 to 100') } });
    expect((await fetch(`${server.url}/v1/responses/${stored.id}/input_items?limit=abc`)).status).toBe(400);
    expect((await fetch(`${server.url}/v1/responses/${stored.id}/input_items?order=sideways`)).status).toBe(400);
    const after = await fetch(`${server.url}/v1/responses/${stored.id}/input_items?after=msg_unknown`);
    expect(after.status).toBe(400);
    expect(await after.json()).toMatchObject({ error: { param: 'after' } });
  });
});

describe('stored responses with API keys', () => {
  let server: ApiServer;
  let upstream: FakeUpstream;

  beforeAll(async () => {
    upstream = await startFakeUpstream({ tokens: 4 });
    server = await startApiServer({ env: { CACHE_ENABLED: 'false', API_KEYS: 'key-a,key-b' }, modelsYaml: fakeModelsYaml(upstream.url, 'm') });
  });

  afterAll(async () => {
    await server?.stop();
    await upstream?.close();
  });

  it('a stored response exists only for the key that created it', async () => {
    const a = new OpenAI({ baseURL: `${server.url}/v1`, apiKey: 'key-a', maxRetries: 0 });
    const b = new OpenAI({ baseURL: `${server.url}/v1`, apiKey: 'key-b', maxRetries: 0 });
    const created = await a.responses.create({ model: 'm', input: 'Mine' });
    expect((await a.responses.retrieve(created.id)).id).toBe(created.id);
    await apiError(b.responses.retrieve(created.id), OpenAI.NotFoundError);
    await apiError(b.responses.inputItems.list(created.id), OpenAI.NotFoundError);
    await apiError(b.responses.delete(created.id), OpenAI.NotFoundError);
    const error = await apiError(b.responses.create({ model: 'm', input: 'Yours?', previous_response_id: created.id }), OpenAI.BadRequestError);
    expect(error.code).toBe('previous_response_not_found');
    expect((await a.responses.create({ model: 'm', input: 'Still mine', previous_response_id: created.id })).previous_response_id).toBe(created.id);
    // The stored routes need a key like the rest of /v1.
    expect((await fetch(`${server.url}/v1/responses/${created.id}`)).status).toBe(401);
  });
});

describe('stored responses disabled (RESPONSES_STORE_ENABLED=false)', () => {
  let server: ApiServer;
  let upstream: FakeUpstream;
  let client: OpenAI;

  beforeAll(async () => {
    upstream = await startFakeUpstream({ tokens: 4 });
    server = await startApiServer({ env: { CACHE_ENABLED: 'false', RESPONSES_STORE_ENABLED: 'false' }, modelsYaml: fakeModelsYaml(upstream.url, 'm') });
    client = new OpenAI({ baseURL: `${server.url}/v1`, apiKey: 'test-key', maxRetries: 0 });
  });

  afterAll(async () => {
    await server?.stop();
    await upstream?.close();
  });

  it('answers store: false, 404 on GET, and refuses previous_response_id', async () => {
    const created = await client.responses.create({ model: 'm', input: 'Hi' });
    expect(storeOf(created)).toBe(false);
    await apiError(client.responses.retrieve(created.id), OpenAI.NotFoundError);
    const error = await apiError(client.responses.create({ model: 'm', input: 'Hi', previous_response_id: created.id }), OpenAI.BadRequestError);
    expect(error).toMatchObject({ param: 'previous_response_id', code: 'unsupported_parameter' });
    expect(error.message).toContain('RESPONSES_STORE_ENABLED=false');
  });
});

describe('stored responses on Redis, shared by two processes (one with the response cache off)', () => {
  let redis: RedisServer;
  let upstream: FakeUpstream;
  let one: ApiServer;
  let two: ApiServer;

  beforeAll(async () => {
    redis = await startRedisServer();
    upstream = await startFakeUpstream({ tokens: 4 });
    const env = { REDIS_URL: redis.url, REDIS_REQUIRED: 'false', REDIS_TIMEOUT_MS: '300', RESPONSES_STORE_TTL_SECONDS: '120' };
    const modelsYaml = fakeModelsYaml(upstream.url, 'm');
    // REDIS_URL is used with the cache off too (stored responses, rate limits).
    [one, two] = await Promise.all([
      startApiServer({ env: { ...env, CACHE_ENABLED: 'true' }, modelsYaml }),
      startApiServer({ env: { ...env, CACHE_ENABLED: 'false' }, modelsYaml }),
    ]);
  });

  afterAll(async () => {
    await Promise.all([one?.stop(), two?.stop()]);
    await upstream?.close();
    await redis?.stop();
  });

  it('a response stored by one process is retrieved, continued and deleted through the other; Redis down is a 503, and answers say store: false', async () => {
    const c1 = new OpenAI({ baseURL: `${one.url}/v1`, apiKey: 'k', maxRetries: 0 });
    const c2 = new OpenAI({ baseURL: `${two.url}/v1`, apiKey: 'k', maxRetries: 0 });
    const created = await c1.responses.create({ model: 'm', input: 'Shared', temperature: 0.5 });
    expect(storeOf(created)).toBe(true);
    expect(await c2.responses.retrieve(created.id)).toEqual(created);
    // Kept under its own namespace, with the configured TTL.
    expect(await redis.command('EXISTS', `infer:responses::${created.id}`)).toBe(':1\r\n');
    const ttl = Number(/^:(\d+)/.exec(await redis.command('TTL', `infer:responses::${created.id}`))![1]);
    expect(ttl).toBeGreaterThan(100);
    expect(ttl).toBeLessThanOrEqual(120);
    const next = await c2.responses.create({ model: 'm', input: 'Continued', previous_response_id: created.id, temperature: 0.5 }).withResponse();
    // Served by the process whose cache is off (no x-cache header), from the stored conversation.
    expect(next.response.headers.get('x-cache')).toBeNull();
    const readiness = (await (await fetch(`${two.url}/health/ready`)).json()) as { details: Record<string, { status: string }> };
    expect(readiness.details['redis']?.status).toBe('up');
    expect(lastChatMessages(upstream).map((m) => m.content)).toEqual(['Shared', created.output_text, 'Continued']);
    expect((await c1.responses.inputItems.list(next.data.id)).data).toHaveLength(3);
    await c2.responses.delete(created.id);
    await apiError(c1.responses.retrieve(created.id), OpenAI.NotFoundError);

    // Garbage under a response's key reads as absent.
    await redis.command('SET', 'infer:responses::resp_garbage', '{"not":"a record"}');
    await apiError(c1.responses.retrieve('resp_garbage'), OpenAI.NotFoundError);

    await redis.stop();
    try {
      const error = await apiError(c1.responses.create({ model: 'm', input: 'Again', previous_response_id: next.data.id }), OpenAI.InternalServerError);
      expect(error).toMatchObject({ type: 'service_unavailable', code: 'store_unavailable' });
      const retrieve = await fetch(`${two.url}/v1/responses/${next.data.id}`);
      expect(retrieve.status).toBe(503);
      // A new response is still answered, and says it was not stored.
      const unstored = await c1.responses.create({ model: 'm', input: 'While Redis is down', temperature: 0.5 });
      expect(unstored.status).toBe('completed');
      expect(storeOf(unstored)).toBe(false);
    } finally {
      await redis.restart();
    }
  });
});
