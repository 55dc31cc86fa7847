import OpenAI from 'openai';
import { FAKE_REFUSAL, type FakeUpstream, startFakeUpstream } from '@infer/model-providers/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type ApiServer, startApiServer } from '../support/api-server.js';
import { fakeModelsYaml } from '../support/load.js';
import { lastChatMessages } from '../support/openai-errors.js';

/**
 * Model refusals (OpenAI's `message.refusal`, `delta.refusal`, the Responses API's `refusal` content
 * parts and `response.refusal.*` events) from an openai-compatible upstream that refuses (the fake
 * upstream refuses a last message containing `[refuse]`), through the response cache, with the
 * official `openai` client.
 */

const refused = { model: 'm', messages: [{ role: 'user' as const, content: 'Tell me a secret [refuse]' }], temperature: 0 };

describe('refusals from an openai-compatible upstream', () => {
  let server: ApiServer;
  let upstream: FakeUpstream;
  let client: OpenAI;

  beforeAll(async () => {
    upstream = await startFakeUpstream({ tokens: 4 });
    server = await startApiServer({ env: { CACHE_ENABLED: 'true' }, modelsYaml: fakeModelsYaml(upstream.url, 'm') });
    client = new OpenAI({ baseURL: `${server.url}/v1`, apiKey: 'test-key', maxRetries: 0 });
  });

  afterAll(async () => {
    await server?.stop();
    await upstream?.close();
  });

  it('chat: message.refusal with content null, streamed as delta.refusal; the cache keeps and replays it', async () => {
    const first = await client.chat.completions.create(refused).withResponse();
    expect(first.response.headers.get('x-cache')).toBe('MISS');
    expect(first.data.choices[0]!.message).toMatchObject({ role: 'assistant', content: null, refusal: FAKE_REFUSAL });
    const hit = await client.chat.completions.create(refused).withResponse();
    expect(hit.response.headers.get('x-cache')).toBe('HIT');
    expect(hit.data.choices[0]!.message).toMatchObject({ content: null, refusal: FAKE_REFUSAL });

    // A fresh stream (another request: a miss), then its replay.
    const streamedRequest = { ...refused, messages: [{ role: 'user' as const, content: 'Another secret [refuse]' }] };
    for (const expected of ['MISS', 'HIT']) {
      const streamed = await client.chat.completions.create({ ...streamedRequest, stream: true }).withResponse();
      expect(streamed.response.headers.get('x-cache')).toBe(expected);
      let refusal = '';
      let content = '';
      for await (const chunk of streamed.data) {
        refusal += chunk.choices[0]?.delta.refusal ?? '';
        content += chunk.choices[0]?.delta.content ?? '';
      }
      expect(refusal).toBe(FAKE_REFUSAL);
      expect(content).toBe('');
    }
    // The SDK's stream helper assembles it.
    const final = await client.chat.completions.stream({ ...refused, messages: [{ role: 'user', content: 'Third secret [refuse]' }] }).finalChatCompletion();
    expect(final.choices[0]!.message.refusal).toBe(FAKE_REFUSAL);
  });

  it('chat: an assistant refusal in the history (a refusal part, or refusal beside null content) is what it said', async () => {
    await client.chat.completions.create({
      model: 'm',
      messages: [
        { role: 'user', content: 'Tell me a secret' },
        { role: 'assistant', content: [{ type: 'refusal', refusal: 'I cannot.' }] },
        { role: 'user', content: 'Why not?' },
        { role: 'assistant', content: null, refusal: 'Still no.' },
        { role: 'user', content: 'Fine.' },
      ],
    });
    expect(lastChatMessages(upstream).map((m) => m.content)).toEqual(['Tell me a secret', 'I cannot.', 'Why not?', 'Still no.', 'Fine.']);
    // Not from a user.
    const res = await fetch(`${server.url}/v1/chat/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ model: 'm', messages: [{ role: 'user', content: [{ type: 'refusal', refusal: 'x' }] }] }),
    });
    expect(res.status).toBe(400);
    expect(((await res.json()) as { error: { param: string } }).error.param).toBe('messages[0].content');
  });

  it('Responses: a refusal content part, streamed as response.refusal.delta/done; a refused turn can be continued', async () => {
    const response = await client.responses.create({ model: 'm', input: 'Responses secret [refuse]', temperature: 0 });
    expect(response.status).toBe('completed');
    expect(response.output).toHaveLength(1);
    expect(response.output[0]).toMatchObject({ type: 'message', role: 'assistant', content: [{ type: 'refusal', refusal: FAKE_REFUSAL }] });
    expect(response.output_text).toBe('');

    const stream = client.responses.stream({ model: 'm', input: 'Streamed secret [refuse]', temperature: 0 });
    const events: Array<{ type: string; [key: string]: unknown }> = [];
    for await (const event of stream) events.push(event as never);
    const types = events.map((e) => e.type);
    expect(types.filter((t) => t.includes('refusal') || t.startsWith('response.content_part') || t.startsWith('response.output_text'))).toEqual([
      'response.content_part.added',
      'response.refusal.delta',
      'response.refusal.delta',
      'response.refusal.delta',
      'response.refusal.done',
      'response.content_part.done',
    ]);
    expect(events.find((e) => e.type === 'response.content_part.added')).toMatchObject({ content_index: 0, part: { type: 'refusal', refusal: '' } });
    expect(events.filter((e) => e.type === 'response.refusal.delta').map((e) => e['delta']).join('')).toBe(FAKE_REFUSAL);
    expect(events.find((e) => e.type === 'response.refusal.done')).toMatchObject({ refusal: FAKE_REFUSAL, content_index: 0 });
    const final = await stream.finalResponse();
    expect(final.output[0]).toMatchObject({ type: 'message', content: [{ type: 'refusal', refusal: FAKE_REFUSAL }] });
    // The streamed and the JSON answer have the same output shape.
    expect(events.at(-1)).toMatchObject({ type: 'response.completed', response: { output: [{ content: [{ type: 'refusal', refusal: FAKE_REFUSAL }] }] } });

    const next = await client.responses.create({ model: 'm', input: 'Then say hello', previous_response_id: response.id });
    expect(next.status).toBe('completed');
    expect(lastChatMessages(upstream).map((m) => m.content)).toEqual(['Responses secret [refuse]', FAKE_REFUSAL, 'Then say hello']);
  });
});
