import type { StreamPart } from '@infer/model-providers';
import { describe, expect, it } from 'vitest';
import { errorBody } from '../common/api-error.js';
import type { StoredResponse } from './response-store.js';
import {
  continuation,
  type ResponseHead,
  ResponseStreamEvents,
  responseBody,
  responseEcho,
  responseId,
  storedInput,
  StoredResponseEvents,
} from './responses-format.js';
import type { ResponsesBody } from './responses.schemas.js';

const head = (fields: Partial<ResponsesBody> = {}): ResponseHead => ({
  id: 'resp_1',
  createdAt: 1_700_000_000,
  model: 'm',
  echo: responseEcho({ model: 'm', input: 'hi', ...fields } as ResponsesBody),
  store: false,
  previousResponseId: null,
});

interface Event {
  type: string;
  sequence_number: number;
  [field: string]: unknown;
}

/** Parses SSE frames, checking that each `event:` line names its data's type. */
function parse(frames: string): Event[] {
  const events: Event[] = [];
  for (const frame of frames.split('\n\n')) {
    if (frame === '') continue;
    const match = /^event: ([^\n]+)\ndata: ([^\n]+)$/.exec(frame);
    expect(match, frame).not.toBeNull();
    const event = JSON.parse(match![2]!) as Event;
    expect(event.type).toBe(match![1]);
    events.push(event);
  }
  expect(frames.endsWith('\n\n')).toBe(true);
  return events;
}

function run(parts: StreamPart[], fields: Partial<ResponsesBody> = {}): Event[] {
  const events = new ResponseStreamEvents(head(fields));
  let frames = events.start();
  for (const part of parts) frames += events.part(part);
  return parse(frames);
}

const usage = { promptTokens: 5, completionTokens: 3 };

describe('responseBody', () => {
  it('is a completed Response with one message item, usage and the echoed request', () => {
    const body = responseBody(head({ instructions: 'Be brief.', max_output_tokens: 9, metadata: { k: 'v' } }), {
      text: 'Hello',
      finishReason: 'stop',
      usage: { promptTokens: 5, completionTokens: 3, cachedPromptTokens: 2 },
    });
    expect(body).toMatchObject({
      id: 'resp_1',
      object: 'response',
      created_at: 1_700_000_000,
      status: 'completed',
      error: null,
      incomplete_details: null,
      model: 'm',
      output: [{ type: 'message', status: 'completed', role: 'assistant', content: [{ type: 'output_text', text: 'Hello', annotations: [] }] }],
      usage: { input_tokens: 5, input_tokens_details: { cached_tokens: 2 }, output_tokens: 3, output_tokens_details: { reasoning_tokens: 0 }, total_tokens: 8 },
      instructions: 'Be brief.',
      max_output_tokens: 9,
      temperature: 1,
      top_p: 1,
      tools: [],
      tool_choice: 'auto',
      parallel_tool_calls: true,
      text: { format: { type: 'text' } },
      metadata: { k: 'v' },
      previous_response_id: null,
      reasoning: null,
      store: false,
      truncation: 'disabled',
    });
    expect(body.output[0]!.id).toMatch(/^msg_[0-9a-f]{24}$/);
    expect(body.completed_at).toEqual(expect.any(Number));
    expect(body).not.toHaveProperty('user');
    expect(responseBody(head({ user: 'u' }), { text: '', finishReason: 'stop', usage })).toMatchObject({ user: 'u' });
    expect(responseId()).toMatch(/^resp_[0-9a-f]{24}$/);
  });

  it('is incomplete when max_output_tokens cut the output', () => {
    const body = responseBody(head(), { text: 'Hel', finishReason: 'length', usage });
    expect(body).toMatchObject({ status: 'incomplete', incomplete_details: { reason: 'max_output_tokens' }, output: [{ type: 'message', status: 'incomplete' }] });
    expect(body.completed_at).toBeNull();
  });

  it('answers tool calls as function_call items (a message item only when there is text)', () => {
    const calls = [
      { id: 'call_1', name: 'get_weather', arguments: '{"city":"Paris"}' },
      { id: 'call_2', name: 'get_time', arguments: '{}' },
    ];
    const body = responseBody(head({ tools: [{ type: 'function', name: 'get_weather' }] }), { text: '', finishReason: 'tool_calls', usage, toolCalls: calls });
    expect(body.status).toBe('completed');
    expect(body.output).toEqual([
      { type: 'function_call', id: expect.stringMatching(/^fc_[0-9a-f]{24}$/), call_id: 'call_1', name: 'get_weather', arguments: '{"city":"Paris"}', status: 'completed' },
      { type: 'function_call', id: expect.stringMatching(/^fc_/), call_id: 'call_2', name: 'get_time', arguments: '{}', status: 'completed' },
    ]);
    expect(body.tools).toEqual([{ type: 'function', name: 'get_weather', description: null, parameters: null, strict: null }]);
    const withText = responseBody(head(), { text: 'Checking.', finishReason: 'tool_calls', usage, toolCalls: calls });
    expect(withText.output.map((item) => item.type)).toEqual(['message', 'function_call', 'function_call']);
    // An empty answer is an empty message.
    expect(responseBody(head(), { text: '', finishReason: 'stop', usage }).output).toEqual([expect.objectContaining({ type: 'message', content: [expect.objectContaining({ text: '' })] })]);
  });
});

describe('ResponseStreamEvents', () => {
  it('streams a text answer in OpenAI order, numbered, ending with response.completed', () => {
    const events = run([{ type: 'delta', text: 'He' }, { type: 'delta', text: '' }, { type: 'delta', text: 'llo "x"\n' }, { type: 'finish', finishReason: 'stop', usage }]);
    expect(events.map((e) => e.type)).toEqual([
      'response.created',
      'response.in_progress',
      'response.output_item.added',
      'response.content_part.added',
      'response.output_text.delta',
      'response.output_text.delta',
      'response.output_text.done',
      'response.content_part.done',
      'response.output_item.done',
      'response.completed',
    ]);
    expect(events.map((e) => e.sequence_number)).toEqual(events.map((_, i) => i));
    expect(events[0]).toMatchObject({ response: { id: 'resp_1', status: 'in_progress', output: [], usage: null } });
    const item = events[2]!['item'] as { id: string };
    expect(events[2]).toMatchObject({ output_index: 0, item: { type: 'message', status: 'in_progress', role: 'assistant', content: [] } });
    expect(events[3]).toMatchObject({ item_id: item.id, output_index: 0, content_index: 0, part: { type: 'output_text', text: '' } });
    expect(events[4]).toMatchObject({ item_id: item.id, output_index: 0, content_index: 0, delta: 'He', logprobs: [] });
    expect(events[6]).toMatchObject({ item_id: item.id, text: 'Hello "x"\n' });
    expect(events[8]).toMatchObject({ item: { id: item.id, status: 'completed', content: [{ text: 'Hello "x"\n' }] } });
    expect(events[9]).toMatchObject({
      response: { status: 'completed', output: [{ id: item.id, content: [{ text: 'Hello "x"\n' }] }], usage: { input_tokens: 5, output_tokens: 3, total_tokens: 8 } },
    });
  });

  it('streams function calls: the message closes first, arguments in deltas, items done at the finish', () => {
    const events = run([
      { type: 'delta', text: 'Checking.' },
      { type: 'tool_call', index: 0, id: 'call_1', name: 'get_weather', arguments: '' },
      { type: 'tool_call', index: 0, arguments: '{"city":' },
      { type: 'tool_call', index: 1, id: 'call_2', name: 'get_time', arguments: '{}' },
      { type: 'tool_call', index: 0, arguments: '"Paris"}' },
      { type: 'finish', finishReason: 'tool_calls', usage },
    ]);
    expect(events.map((e) => e.type)).toEqual([
      'response.created',
      'response.in_progress',
      'response.output_item.added',
      'response.content_part.added',
      'response.output_text.delta',
      'response.output_text.done',
      'response.content_part.done',
      'response.output_item.done',
      'response.output_item.added',
      'response.function_call_arguments.delta',
      'response.output_item.added',
      'response.function_call_arguments.delta',
      'response.function_call_arguments.delta',
      'response.function_call_arguments.done',
      'response.output_item.done',
      'response.function_call_arguments.done',
      'response.output_item.done',
      'response.completed',
    ]);
    expect(events.map((e) => e.sequence_number)).toEqual(events.map((_, i) => i));
    expect(events[8]).toMatchObject({ output_index: 1, item: { type: 'function_call', call_id: 'call_1', name: 'get_weather', arguments: '', status: 'in_progress' } });
    expect(events[12]).toMatchObject({ output_index: 1, delta: '"Paris"}' });
    expect(events[13]).toMatchObject({ output_index: 1, name: 'get_weather', arguments: '{"city":"Paris"}' });
    expect(events[16]).toMatchObject({ output_index: 2, item: { call_id: 'call_2', arguments: '{}', status: 'completed' } });
    const final = events.at(-1) as unknown as { response: { output: Array<Record<string, unknown>> } };
    expect(final.response.output.map((item) => [item['type'], item['call_id'] ?? item['status']])).toEqual([
      ['message', 'completed'],
      ['function_call', 'call_1'],
      ['function_call', 'call_2'],
    ]);
  });

  it('ends with response.incomplete when max_output_tokens cut the output', () => {
    const events = run([{ type: 'delta', text: 'Hel' }, { type: 'finish', finishReason: 'length', usage }]);
    expect(events.at(-2)).toMatchObject({ type: 'response.output_item.done', item: { status: 'incomplete' } });
    expect(events.at(-1)).toMatchObject({ type: 'response.incomplete', response: { status: 'incomplete', incomplete_details: { reason: 'max_output_tokens' } } });
  });

  it('gives an answer with no text an empty message, as the JSON answer', () => {
    const events = run([{ type: 'finish', finishReason: 'stop', usage }]);
    expect(events.map((e) => e.type)).toEqual([
      'response.created',
      'response.in_progress',
      'response.output_item.added',
      'response.content_part.added',
      'response.output_text.done',
      'response.content_part.done',
      'response.output_item.done',
      'response.completed',
    ]);
    expect(events.at(-1)).toMatchObject({ response: { output: [{ type: 'message', content: [{ type: 'output_text', text: '' }] }] } });
  });

  it('streams a refusal as a refusal part (refusal.delta/done), in content order beside text', () => {
    const usage = { promptTokens: 1, completionTokens: 2 };
    const only = run([{ type: 'refusal', text: 'I can' }, { type: 'refusal', text: 'not.' }, { type: 'finish', finishReason: 'stop', usage }]);
    expect(only.map((e) => e.type)).toEqual([
      'response.created',
      'response.in_progress',
      'response.output_item.added',
      'response.content_part.added',
      'response.refusal.delta',
      'response.refusal.delta',
      'response.refusal.done',
      'response.content_part.done',
      'response.output_item.done',
      'response.completed',
    ]);
    expect(only[3]).toMatchObject({ content_index: 0, part: { type: 'refusal', refusal: '' } });
    expect(only[6]).toMatchObject({ content_index: 0, refusal: 'I cannot.' });
    const item = { type: 'message', status: 'completed', role: 'assistant', content: [{ type: 'refusal', refusal: 'I cannot.' }] };
    expect(only[8]).toMatchObject({ item });
    expect((only[9]!['response'] as { output: unknown[] }).output).toEqual([{ ...item, id: expect.any(String) }]);
    // The same as the JSON answer.
    expect(responseBody(head(), { text: '', finishReason: 'stop', usage, refusal: 'I cannot.' }).output).toEqual([{ ...item, id: expect.any(String) }]);

    // Text, then a refusal: two parts, text first; a refusal, then text: refusal first.
    const textFirst = run([{ type: 'delta', text: 'Well' }, { type: 'refusal', text: 'no' }, { type: 'finish', finishReason: 'stop', usage }]);
    expect(textFirst.filter((e) => e.type === 'response.refusal.delta')[0]).toMatchObject({ content_index: 1 });
    expect((textFirst.at(-1)!['response'] as { output: Array<{ content: unknown[] }> }).output[0]!.content).toEqual([
      { type: 'output_text', text: 'Well', annotations: [], logprobs: [] },
      { type: 'refusal', refusal: 'no' },
    ]);
    const refusalFirst = run([{ type: 'refusal', text: 'no' }, { type: 'delta', text: 'Well' }, { type: 'finish', finishReason: 'stop', usage }]);
    expect(refusalFirst.filter((e) => e.type === 'response.output_text.delta')[0]).toMatchObject({ content_index: 1 });
    expect(refusalFirst.filter((e) => e.type === 'response.content_part.done').map((e) => e['content_index'])).toEqual([0, 1]);
    expect((refusalFirst.at(-1)!['response'] as { output: Array<{ content: Array<{ type: string }> }> }).output[0]!.content.map((p) => p.type)).toEqual([
      'refusal',
      'output_text',
    ]);
  });

  it('reports an error after the start as an error event, then response.failed with what was produced', () => {
    const events = new ResponseStreamEvents(head());
    let frames = events.start() + events.part({ type: 'delta', text: 'Hi' });
    frames += events.failed(502, errorBody(502, 'upstream closed the stream', undefined, 'upstream_error'));
    const parsed = parse(frames);
    expect(parsed.slice(-2)).toEqual([
      { type: 'error', sequence_number: 5, code: 'upstream_error', message: 'upstream closed the stream', param: null },
      expect.objectContaining({
        type: 'response.failed',
        sequence_number: 6,
        response: expect.objectContaining({
          status: 'failed',
          error: { code: 'server_error', message: 'upstream closed the stream' },
          output: [expect.objectContaining({ type: 'message', status: 'incomplete', content: [expect.objectContaining({ text: 'Hi' })] })],
        }),
      }),
    ]);
    const limited = parse(new ResponseStreamEvents(head()).failed(429, errorBody(429, 'slow down')));
    expect(limited[1]).toMatchObject({ response: { error: { code: 'rate_limit_exceeded' } } });
  });
});

describe('StoredResponseEvents', () => {
  const usage = { promptTokens: 1, completionTokens: 2 };
  const stored = () => {
    const live = run([
      { type: 'delta', text: 'Hello' },
      { type: 'refusal', text: 'but no' },
      { type: 'tool_call', index: 0, id: 'call_1', name: 'f', arguments: '{"a":1}' },
      { type: 'finish', finishReason: 'tool_calls', usage },
    ]);
    return { live, response: live.at(-1)!['response'] as { id: string; output: Record<string, unknown>[]; [k: string]: unknown } };
  };

  it('replays a finished response as its live stream went: the same events, in order, numbered from 0, ending with it', () => {
    const { live, response } = stored();
    const events = new StoredResponseEvents();
    const all = parse(events.start(response) + events.end(response));
    expect(all.map((e) => e.sequence_number)).toEqual(all.map((_, i) => i));
    // The same events; a part is closed before the next one opens (live, text and a refusal may overlap).
    expect(all.map((e) => e.type).sort()).toEqual(live.map((e) => e.type).sort());
    expect(all.at(-1)!['response']).toEqual(response);
    // Without overlapping parts (and one delta per part, as here), the very same order.
    const plain = run([{ type: 'delta', text: 'Hi' }, { type: 'tool_call', index: 0, id: 'c', name: 'g', arguments: '{}' }, { type: 'finish', finishReason: 'stop', usage }]);
    const plainEvents = new StoredResponseEvents();
    const plainResponse = plain.at(-1)!['response'] as typeof response;
    expect(parse(plainEvents.start(plainResponse) + plainEvents.end(plainResponse)).map((e) => e.type)).toEqual(plain.map((e) => e.type));
    // Deltas carry the whole text of a part.
    expect(all.find((e) => e.type === 'response.output_text.delta')).toMatchObject({ delta: 'Hello', content_index: 0 });
    expect(all.find((e) => e.type === 'response.refusal.delta')).toMatchObject({ delta: 'but no', content_index: 1 });
    expect(all.find((e) => e.type === 'response.function_call_arguments.done')).toMatchObject({ name: 'f', arguments: '{"a":1}' });
  });

  it('resumes after starting_after; a background response has response.queued; a cancelled one ends with an error event', () => {
    const { response } = stored();
    const events = new StoredResponseEvents(4);
    const resumed = parse(events.start(response) + events.end(response));
    expect(resumed[0]!.sequence_number).toBe(5);
    const background = { ...response, background: true, status: 'queued', output: [] };
    const followed = new StoredResponseEvents();
    const head = parse(followed.start(background));
    expect(head.map((e) => e.type)).toEqual(['response.created', 'response.queued']);
    expect(followed.progress({ ...background, status: 'queued' })).toBe('');
    const tail = parse(followed.end({ ...background, status: 'cancelled' }));
    expect(tail.map((e) => [e.type, e.sequence_number])).toEqual([
      ['response.in_progress', 2],
      ['error', 3],
    ]);
    expect(tail[1]).toMatchObject({ code: 'response_cancelled' });
  });
});

describe('stored responses', () => {
  it('echo store and previous_response_id from the head', () => {
    const stored = { ...head(), store: true, previousResponseId: 'resp_0' };
    expect(responseBody(stored, { text: 'x', finishReason: 'stop', usage })).toMatchObject({ store: true, previous_response_id: 'resp_0' });
  });

  it('finish + last give the frames part() gives for a finish, and the final Response', () => {
    const parts: StreamPart[] = [{ type: 'delta', text: 'Hi' }];
    const whole = new ResponseStreamEvents(head());
    const split = new ResponseStreamEvents(head());
    let a = whole.start();
    let b = split.start();
    for (const part of parts) {
      a += whole.part(part);
      b += split.part(part);
    }
    a += whole.part({ type: 'finish', finishReason: 'length', usage });
    const { frames, response } = split.finish('length', usage);
    expect(response).toMatchObject({ status: 'incomplete', output: [{ type: 'message', status: 'incomplete', content: [{ text: 'Hi' }] }] });
    b += frames + split.last(response);
    // Item ids are random per instance: compare with them blanked.
    const blank = (s: string) => s.replace(/msg_[0-9a-f]{24}/g, 'msg_x').replace(/"completed_at":\d+/g, '"completed_at":0');
    expect(blank(b)).toBe(blank(a));
    expect(parse(b).at(-1)!.type).toBe('response.incomplete');
  });

  it('storedInput gives every input item an id, and messages content as parts and a status (as OpenAI lists them)', () => {
    const [text] = storedInput('Hello');
    expect(text).toEqual({ id: expect.stringMatching(/^msg_[0-9a-f]{24}$/), type: 'message', role: 'user', status: 'completed', content: [{ type: 'input_text', text: 'Hello' }] });
    const items = storedInput([
      { role: 'developer', content: 'Be brief.' },
      { type: 'message', role: 'assistant', content: 'Sure.' },
      { type: 'message', role: 'user', content: [{ type: 'input_text', text: 'a' }], id: 'msg_mine' },
      { type: 'message', role: 'assistant', content: [{ type: 'output_text', text: 'b' }], status: 'incomplete' },
      { type: 'function_call', call_id: 'c1', name: 'f', arguments: '{}' },
      { type: 'function_call_output', call_id: 'c1', output: '1' },
    ]);
    expect(items).toEqual([
      { id: expect.stringMatching(/^msg_/), type: 'message', role: 'developer', status: 'completed', content: [{ type: 'input_text', text: 'Be brief.' }] },
      { id: expect.stringMatching(/^msg_/), type: 'message', role: 'assistant', status: 'completed', content: [{ type: 'output_text', text: 'Sure.', annotations: [] }] },
      { id: 'msg_mine', type: 'message', role: 'user', status: 'completed', content: [{ type: 'input_text', text: 'a' }] },
      { id: expect.stringMatching(/^msg_/), type: 'message', role: 'assistant', status: 'incomplete', content: [{ type: 'output_text', text: 'b', annotations: [] }] },
      { id: expect.stringMatching(/^fc_/), type: 'function_call', call_id: 'c1', name: 'f', arguments: '{}' },
      { id: expect.stringMatching(/^fco_/), type: 'function_call_output', call_id: 'c1', output: '1' },
    ]);
  });

  it('continuation is the stored context, then the input, then the output', () => {
    const record: StoredResponse = {
      v: 1,
      response: { id: 'resp_2', output: [{ id: 'msg_out', type: 'message' }] },
      input: [{ id: 'msg_in', type: 'message', role: 'user', content: 'b' }],
      context: [{ id: 'msg_old', type: 'message', role: 'user', content: 'a' }],
      owner: null,
    };
    expect(continuation(record).map((item) => item.id)).toEqual(['msg_old', 'msg_in', 'msg_out']);
  });
});
