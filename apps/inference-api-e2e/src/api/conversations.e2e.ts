import OpenAI from 'openai';
import { type FakeUpstream, startFakeUpstream } from '@infer/model-providers/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type ApiServer, startApiServer } from '../support/api-server.js';
import { fakeModelsYaml } from '../support/load.js';
import { apiError, lastChatMessages } from '../support/openai-errors.js';
import { type RedisPair, startRedisPair } from '../support/redis-pair.js';

/**
 * The Conversations API (POST/GET/DELETE /v1/conversations, its items) and `conversation` on
 * POST /v1/responses, with the official `openai` client against real server processes: the
 * in-process store with API keys, and two processes sharing a real redis-server.
 */




/** Item text as listed (message items carry `content` parts). */
const texts = (items: ReadonlyArray<{ type: string; content?: unknown }>) =>
  items.map((item) => (item.type === 'message' ? (item.content as Array<{ text: string }>).map((part) => part.text).join('') : item.type));

describe('conversations (in-process store, API keys)', () => {
  let server: ApiServer;
  let upstream: FakeUpstream;
  let client: OpenAI;

  beforeAll(async () => {
    upstream = await startFakeUpstream({ tokens: 4 });
    server = await startApiServer({ env: { CACHE_ENABLED: 'false', API_KEYS: 'key-a,key-b' }, modelsYaml: fakeModelsYaml(upstream.url, 'm') });
    client = new OpenAI({ baseURL: `${server.url}/v1`, apiKey: 'key-a', maxRetries: 0 });
  });

  afterAll(async () => {
    await server?.stop();
    await upstream?.close();
  });

  it('responses in a conversation see its items, and add their input and output to it', async () => {
    const conversation = await client.conversations.create({
      metadata: { topic: 'names' },
      items: [{ type: 'message', role: 'system', content: 'Be brief.' }],
    });
    expect(conversation).toMatchObject({ object: 'conversation', metadata: { topic: 'names' } });
    expect(conversation.id).toMatch(/^conv_/);

    const first = await client.responses.create({ model: 'm', input: 'My name is Ada.', conversation: conversation.id });
    expect(first.status).toBe('completed');
    expect((first as unknown as { conversation: { id: string } }).conversation).toEqual({ id: conversation.id });
    const second = await client.responses.create({ model: 'm', input: 'What is my name?', conversation: { id: conversation.id } });
    // The model saw the conversation: the system item, the first turn, then the new input.
    expect(lastChatMessages(upstream)).toEqual([
      { role: 'system', content: 'Be brief.' },
      { role: 'user', content: 'My name is Ada.' },
      { role: 'assistant', content: first.output_text },
      { role: 'user', content: 'What is my name?' },
    ]);
    expect(second.output_text).not.toBe('');

    const listed = await client.conversations.items.list(conversation.id, { order: 'asc' });
    expect(texts(listed.data)).toEqual(['Be brief.', 'My name is Ada.', first.output_text, 'What is my name?', second.output_text]);
    // Paged, newest first by default, through the SDK's iterator.
    const all: string[] = [];
    for await (const item of client.conversations.items.list(conversation.id, { limit: 2 })) all.push(item.id ?? '');
    expect(all).toEqual([...listed.data].reverse().map((item) => item.id));
  });

  it('items can be added, read and deleted; metadata replaced; the conversation deleted', async () => {
    const conversation = await client.conversations.create({});
    const added = await client.conversations.items.create(conversation.id, {
      items: [
        { type: 'message', role: 'user', content: 'Remember: blue.' },
        { type: 'message', role: 'assistant', content: 'Noted.' },
      ],
    });
    expect(added.data).toHaveLength(2);
    const item = await client.conversations.items.retrieve(added.data[0]!.id ?? '', { conversation_id: conversation.id });
    expect(texts([item])).toEqual(['Remember: blue.']);
    const afterDelete = await client.conversations.items.delete(added.data[1]!.id ?? '', { conversation_id: conversation.id });
    expect(afterDelete.id).toBe(conversation.id);
    expect(texts((await client.conversations.items.list(conversation.id)).data)).toEqual(['Remember: blue.']);
    expect((await client.conversations.update(conversation.id, { metadata: { k: 'v' } })).metadata).toEqual({ k: 'v' });
    expect((await client.conversations.retrieve(conversation.id)).metadata).toEqual({ k: 'v' });
    // null where the SDK's types allow it: no metadata, no items.
    expect((await client.conversations.update(conversation.id, { metadata: null })).metadata).toEqual({});
    const empty = await client.conversations.create({ metadata: null, items: null });
    expect((await client.conversations.items.list(empty.id)).data).toEqual([]);
    expect(await client.conversations.delete(conversation.id)).toEqual({ id: conversation.id, object: 'conversation.deleted', deleted: true });
    await apiError(client.conversations.retrieve(conversation.id), OpenAI.NotFoundError);
    // A response naming it now: 400 conversation_not_found.
    expect(await apiError(client.responses.create({ model: 'm', input: 'x', conversation: conversation.id }), OpenAI.BadRequestError)).toMatchObject({
      param: 'conversation',
      code: 'conversation_not_found',
    });
  });

  it('belongs to the key that created it; refuses bad items and previous_response_id with conversation', async () => {
    const conversation = await client.conversations.create({});
    const other = new OpenAI({ baseURL: `${server.url}/v1`, apiKey: 'key-b', maxRetries: 0 });
    await apiError(other.conversations.retrieve(conversation.id), OpenAI.NotFoundError);
    await apiError(other.responses.create({ model: 'm', input: 'x', conversation: conversation.id }), OpenAI.BadRequestError);
    // An item a response could not be built on (an item type this server does not serve).
    const bad = await apiError(client.conversations.items.create(conversation.id, { items: [{ type: 'item_reference', id: 'msg_1' }] as never }), OpenAI.BadRequestError);
    expect(bad.param).toBe('items[0].type');
    const previous = await client.responses.create({ model: 'm', input: 'Hi' });
    expect(
      await apiError(client.responses.create({ model: 'm', input: 'x', conversation: conversation.id, previous_response_id: previous.id }), OpenAI.BadRequestError),
    ).toMatchObject({ param: 'conversation' });
    const tooMany = await fetch(`${server.url}/v1/conversations`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: 'Bearer key-a' },
      body: JSON.stringify({ items: Array.from({ length: 21 }, () => ({ role: 'user', content: 'x' })) }),
    });
    expect(tooMany.status).toBe(400);
  });
});

describe('conversations across processes (Redis)', () => {
  let pair: RedisPair;
  let upstream: FakeUpstream;
  let a: ApiServer;
  let b: ApiServer;

  beforeAll(async () => {
    pair = await startRedisPair(3);
    ({ upstream, a, b } = pair);
  }, 60_000);

  afterAll(() => pair?.stop());

  it('a conversation created on one process is continued on the other, turn after turn, streamed too', async () => {
    const onA = new OpenAI({ baseURL: `${a.url}/v1`, apiKey: 'k', maxRetries: 0 });
    const onB = new OpenAI({ baseURL: `${b.url}/v1`, apiKey: 'k', maxRetries: 0 });
    const conversation = await onA.conversations.create({});
    await onB.responses.create({ model: 'm', input: 'turn 1', conversation: conversation.id });
    const stream = onA.responses.stream({ model: 'm', input: 'turn 2', conversation: conversation.id });
    const streamed = await stream.finalResponse();
    expect(streamed.status).toBe('completed');
    await onB.responses.create({ model: 'm', input: 'turn 3', conversation: conversation.id });
    expect(lastChatMessages(upstream).map((m) => m.role)).toEqual(['user', 'assistant', 'user', 'assistant', 'user']);
    const items = await onA.conversations.items.list(conversation.id, { order: 'asc', limit: 100 });
    expect(items.data).toHaveLength(6);
    expect(texts(items.data).filter((_, i) => i % 2 === 0)).toEqual(['turn 1', 'turn 2', 'turn 3']);
  });

  it('responses of one conversation finishing at once on both processes lose none of their items', async () => {
    const onA = new OpenAI({ baseURL: `${a.url}/v1`, apiKey: 'k', maxRetries: 0 });
    const onB = new OpenAI({ baseURL: `${b.url}/v1`, apiKey: 'k', maxRetries: 0 });
    const conversation = await onA.conversations.create({});
    const inputs = Array.from({ length: 24 }, (_, i) => `parallel ${i}`);
    await Promise.all(inputs.map((input, i) => (i % 2 === 0 ? onA : onB).responses.create({ model: 'm', input, conversation: conversation.id, store: false })));
    const items = await onB.conversations.items.list(conversation.id, { order: 'asc', limit: 100 });
    // Each response adds its input and its output; a change lost to the other process's write would drop both.
    expect(items.data).toHaveLength(2 * inputs.length);
    expect(texts(items.data).filter((t) => t.startsWith('parallel')).sort()).toEqual([...inputs].sort());
  });
});
