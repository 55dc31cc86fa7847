import { once } from 'node:events';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { ModelProviderError } from '../../contract/errors.js';
import type { ChatRequest, StreamPart, ToolCall, ToolCallPart } from '../../contract/model-provider.js';
import { captureError, collectStream } from '../../testing/conformance.js';
import { fakeReplyHash, startFakeUpstream } from '../../testing/fake-upstream.js';
import type { FakeUpstream } from '../../testing/fake-upstream.js';
import { OpenAICompatibleProvider } from './openai-compatible.provider.js';
import { ToolCallStream, wireMessages } from './tool-calls.js';

const WEATHER = {
  name: 'get_weather',
  description: 'Current weather of a city',
  parameters: { type: 'object', properties: { city: { type: 'string' }, unit: { type: 'string' } }, required: ['city'] },
};
const TIME = { name: 'get_time', parameters: { type: 'object', properties: { zone: { type: 'string' } } } };
const ASK: ChatRequest = { messages: [{ role: 'user', content: 'Weather in Oslo?' }], tools: [WEATHER, TIME], temperature: 0 };

let upstream: FakeUpstream;
const providers: OpenAICompatibleProvider[] = [];

function provider(baseUrl = upstream.url): OpenAICompatibleProvider {
  const p = new OpenAICompatibleProvider({ baseUrl, model: 'upstream-model' });
  providers.push(p);
  return p;
}

function lastBody(): Record<string, unknown> {
  return upstream.requests.filter((r) => r.method === 'POST').at(-1)?.body as Record<string, unknown>;
}

/** Joins the tool call parts of a stream into calls (what a client does with the deltas). */
function joinCalls(parts: readonly StreamPart[]): ToolCall[] {
  const calls: Array<{ id: string; name: string; arguments: string }> = [];
  for (const part of parts) {
    if (part.type !== 'tool_call') continue;
    const call = calls[part.index];
    if (call) call.arguments += part.arguments;
    else calls[part.index] = { id: part.id ?? '', name: part.name ?? '', arguments: part.arguments };
  }
  return calls;
}

async function rawUpstream(body: string, contentType: string): Promise<{ url: string; close: () => void }> {
  const server = createServer((req, res) => {
    req.resume();
    res.writeHead(200, { 'content-type': contentType }).end(body);
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/v1`, close: () => server.close() };
}

beforeAll(async () => {
  upstream = await startFakeUpstream();
});
afterEach(async () => {
  await Promise.all(providers.splice(0).map((p) => p.close()));
  upstream.reset();
});
afterAll(() => upstream.close());

describe('OpenAICompatibleProvider: tool calling', () => {
  it('declares the capability, and supportsTools: false turns it off', async () => {
    expect(provider().capabilities.tools).toBe(true);
    const off = new OpenAICompatibleProvider({ baseUrl: upstream.url, model: 'm', supportsTools: false });
    providers.push(off);
    expect(off.capabilities.tools).toBe(false);
  });

  it('sends tools, tool_choice and parallel_tool_calls in OpenAI form', async () => {
    await provider().chat({ ...ASK, toolChoice: { name: 'get_time' }, parallelToolCalls: false });
    const body = lastBody();
    expect(body['tools']).toEqual([
      { type: 'function', function: WEATHER },
      { type: 'function', function: TIME },
    ]);
    expect(body['tool_choice']).toEqual({ type: 'function', function: { name: 'get_time' } });
    expect(body['parallel_tool_calls']).toBe(false);
    await provider().chat({ ...ASK, toolChoice: 'required' });
    expect(lastBody()['tool_choice']).toBe('required');
    await provider().chat({ messages: ASK.messages });
    expect(Object.keys(lastBody())).not.toContain('tools');
  });

  it('returns the calls of a non-stream answer, with finish reason tool_calls', async () => {
    const result = await provider().chat(ASK);
    const hash = fakeReplyHash('Weather in Oslo?');
    expect(result.finishReason).toBe('tool_calls');
    expect(result.text).toBe('');
    expect(result.toolCalls).toEqual([
      { id: `call_${hash}_0`, name: 'get_weather', arguments: JSON.stringify({ city: hash, unit: hash }) },
      { id: `call_${hash}_1`, name: 'get_time', arguments: JSON.stringify({ zone: hash }) },
    ]);
    expect(result.usage).toEqual({ promptTokens: expect.any(Number), completionTokens: 8 });
  });

  it('streams the calls as tool_call parts: id and name first, then argument pieces; joined they equal the non-stream calls', async () => {
    const p = provider();
    const whole = await p.chat(ASK);
    const streamed = await collectStream(p.streamChat(ASK));
    const toolParts = streamed.parts.filter((part): part is ToolCallPart => part.type === 'tool_call');
    expect(toolParts.length).toBeGreaterThan(2);
    expect(toolParts[0]).toMatchObject({ index: 0, id: expect.any(String), name: 'get_weather', arguments: '' });
    for (const part of toolParts.filter((x) => x.id === undefined)) expect(part.name).toBeUndefined();
    expect(joinCalls(streamed.parts)).toEqual(whole.toolCalls);
    expect(streamed.text).toBe('');
    expect(streamed.finish?.finishReason).toBe('tool_calls');
    expect(streamed.parts.at(-1)?.type).toBe('finish');
  });

  it('sends tool-call history in OpenAI form and gets text back after a tool result', async () => {
    const first = await provider().chat(ASK);
    const calls = first.toolCalls ?? [];
    const followUp: ChatRequest = {
      ...ASK,
      messages: [
        ...ASK.messages,
        { role: 'assistant', content: '', toolCalls: calls },
        ...calls.map((call) => ({ role: 'tool' as const, content: `result of ${call.name}`, toolCallId: call.id })),
      ],
    };
    const result = await provider().chat(followUp);
    expect(result.finishReason).toBe('stop');
    expect(result.toolCalls).toBeUndefined();
    expect(result.text.length).toBeGreaterThan(0);
    const messages = lastBody()['messages'] as unknown[];
    expect(messages[1]).toEqual({
      role: 'assistant',
      content: null,
      tool_calls: calls.map((call) => ({ id: call.id, type: 'function', function: { name: call.name, arguments: call.arguments } })),
    });
    expect(messages[2]).toEqual({ role: 'tool', content: 'result of get_weather', tool_call_id: calls[0]?.id });
  });

  it('tool_choice none gets text', async () => {
    const result = await provider().chat({ ...ASK, toolChoice: 'none' });
    expect(result.finishReason).toBe('stop');
    expect(result.toolCalls).toBeUndefined();
  });

  it('accepts lenient upstream forms: missing ids, object arguments, the legacy function_call', async () => {
    const body = JSON.stringify({
      choices: [
        {
          index: 0,
          message: { role: 'assistant', content: null, tool_calls: [{ type: 'function', function: { name: 'f', arguments: { a: 1 } } }] },
          finish_reason: 'tool_calls',
        },
      ],
    });
    const raw = await rawUpstream(body, 'application/json');
    try {
      const result = await provider(raw.url).chat(ASK);
      expect(result.toolCalls).toEqual([{ id: expect.stringMatching(/^call_[\w-]{24}$/), name: 'f', arguments: '{"a":1}' }]);
    } finally {
      raw.close();
    }
    const legacy = await rawUpstream(
      JSON.stringify({ choices: [{ index: 0, message: { role: 'assistant', content: null, function_call: { name: 'g', arguments: '{}' } }, finish_reason: 'function_call' }] }),
      'application/json',
    );
    try {
      const result = await provider(legacy.url).chat(ASK);
      expect(result.finishReason).toBe('tool_calls');
      expect(result.toolCalls).toEqual([{ id: expect.stringMatching(/^call_/), name: 'g', arguments: '{}' }]);
    } finally {
      legacy.close();
    }
  });

  it('replays the calls of a JSON answer to a stream request as parts', async () => {
    const raw = await rawUpstream(
      JSON.stringify({ choices: [{ index: 0, message: { role: 'assistant', content: null, tool_calls: [{ id: 'c1', type: 'function', function: { name: 'f', arguments: '{"x":2}' } }] }, finish_reason: 'tool_calls' }] }),
      'application/json',
    );
    try {
      const streamed = await collectStream(provider(raw.url).streamChat(ASK));
      expect(streamed.parts).toEqual([
        { type: 'tool_call', index: 0, id: 'c1', name: 'f', arguments: '{"x":2}' },
        { type: 'finish', finishReason: 'tool_calls', usage: expect.any(Object) },
      ]);
    } finally {
      raw.close();
    }
  });

  it('a tool call without a name is a malformed upstream answer', async () => {
    const raw = await rawUpstream(
      JSON.stringify({ choices: [{ index: 0, message: { role: 'assistant', tool_calls: [{ id: 'c1', function: { arguments: '{}' } }] }, finish_reason: 'tool_calls' }] }),
      'application/json',
    );
    try {
      const error = await captureError(() => provider(raw.url).chat(ASK));
      expect(error).toBeInstanceOf(ModelProviderError);
      expect((error as ModelProviderError).code).toBe('upstream_error');
    } finally {
      raw.close();
    }
  });
});

describe('OpenAICompatibleProvider: usage details', () => {
  it("reads the upstream's cached prompt tokens (usage.prompt_tokens_details.cached_tokens)", async () => {
    const raw = await rawUpstream(
      JSON.stringify({
        choices: [{ index: 0, message: { role: 'assistant', content: 'hi' }, finish_reason: 'stop' }],
        usage: { prompt_tokens: 120, completion_tokens: 2, prompt_tokens_details: { cached_tokens: 96 } },
      }),
      'application/json',
    );
    try {
      expect((await provider(raw.url).chat(ASK)).usage).toEqual({ promptTokens: 120, completionTokens: 2, cachedPromptTokens: 96 });
    } finally {
      raw.close();
    }
    // Without details: no claim either way.
    expect(Object.keys((await provider().chat({ messages: ASK.messages })).usage)).toEqual(['promptTokens', 'completionTokens']);
  });
});

describe('ToolCallStream', () => {
  it('numbers calls in the order they start, whatever the upstream indexes, and generates missing ids', () => {
    const s = new ToolCallStream();
    expect(s.parts([{ index: 3, id: 'a', function: { name: 'f', arguments: '{"' } }], 'l')).toEqual([
      { type: 'tool_call', index: 0, id: 'a', name: 'f', arguments: '{"' },
    ]);
    const second = s.parts([{ index: 7, function: { name: 'g', arguments: '' } }, { index: 3, function: { arguments: 'x":1}' } }], 'l');
    expect(second).toEqual([
      { type: 'tool_call', index: 1, id: expect.stringMatching(/^call_/), name: 'g', arguments: '' },
      { type: 'tool_call', index: 0, arguments: 'x":1}' },
    ]);
    // Pieces without argument text carry nothing.
    expect(s.parts([{ index: 7, function: { arguments: '' } }], 'l')).toEqual([]);
  });

  it('rejects a call that starts without a name, and non-string arguments', () => {
    expect(() => new ToolCallStream().parts([{ index: 0, function: { arguments: '{}' } }], 'l')).toThrow(ModelProviderError);
    expect(() => new ToolCallStream().parts([{ index: 0, function: { name: 'f', arguments: 5 } }], 'l')).toThrow(ModelProviderError);
  });
});

describe('wireMessages', () => {
  it('returns the same array when no message carries tool calls', () => {
    const messages = [{ role: 'user' as const, content: 'x' }];
    expect(wireMessages(messages)).toBe(messages);
  });
});
