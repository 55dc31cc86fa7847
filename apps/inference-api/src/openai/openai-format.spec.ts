import { describe, expect, it } from 'vitest';
import { chatChunkFormatter, chatCompletionBody, completionId, textChunkFormatter } from './openai-format.js';

describe('openai-format', () => {
  it('makes OpenAI-style ids', () => {
    expect(completionId('chatcmpl')).toMatch(/^chatcmpl-[0-9a-f]{24}$/);
    expect(completionId('cmpl')).toMatch(/^cmpl-[0-9a-f]{24}$/);
    // Drawn from a pool refilled every 341 ids: unique across refills.
    const ids = new Set(Array.from({ length: 2_000 }, () => completionId('chatcmpl')));
    expect(ids.size).toBe(2_000);
  });

  it('formats chat chunks as valid JSON in the OpenAI shape', () => {
    const f = chatChunkFormatter('chatcmpl-1', 10, 'm"odel');
    expect(JSON.parse(f.start()!)).toMatchObject({ object: 'chat.completion.chunk', model: 'm"odel', choices: [{ delta: { role: 'assistant' } }] });
    expect(JSON.parse(f.delta('he said "hi"\n'))).toMatchObject({ choices: [{ index: 0, delta: { content: 'he said "hi"\n' }, finish_reason: null }] });
    expect(JSON.parse(f.finish('length'))).toMatchObject({ choices: [{ delta: {}, finish_reason: 'length' }] });
    expect(JSON.parse(f.usage({ promptTokens: 3, completionTokens: 4 }))).toMatchObject({
      choices: [],
      usage: { prompt_tokens: 3, completion_tokens: 4, total_tokens: 7 },
    });
  });

  it('formats text completion chunks', () => {
    const f = textChunkFormatter('cmpl-1', 10, 'm');
    expect(f.start()).toBeUndefined();
    expect(JSON.parse(f.delta('x'))).toMatchObject({ object: 'text_completion', choices: [{ text: 'x', finish_reason: null }] });
  });

  it('builds a chat.completion body', () => {
    const body = chatCompletionBody('id', 1, 'm', { text: 'hi', finishReason: 'stop', usage: { promptTokens: 1, completionTokens: 2 } });
    expect(body.choices[0]).toMatchObject({ message: { role: 'assistant', content: 'hi' }, finish_reason: 'stop' });
    expect(body.usage.total_tokens).toBe(3);
    expect(Object.keys(body.choices[0]!.message)).toEqual(['role', 'content', 'refusal']);
    expect(Object.keys(body.usage)).toEqual(['prompt_tokens', 'completion_tokens', 'total_tokens']);
    const cached = chatCompletionBody('id', 1, 'm', { text: 'hi', finishReason: 'stop', usage: { promptTokens: 10, completionTokens: 2, cachedPromptTokens: 8 } });
    expect(cached.usage).toEqual({ prompt_tokens: 10, completion_tokens: 2, total_tokens: 12, prompt_tokens_details: { cached_tokens: 8 } });
  });

  it('puts tool calls in the message, with content null when there is no text', () => {
    const usage = { promptTokens: 1, completionTokens: 2 };
    const toolCalls = [{ id: 'c1', name: 'f', arguments: '{"a":1}' }];
    const body = chatCompletionBody('id', 1, 'm', { text: '', finishReason: 'tool_calls', usage, toolCalls });
    expect(body.choices[0]).toEqual({
      index: 0,
      message: { role: 'assistant', content: null, refusal: null, tool_calls: [{ id: 'c1', type: 'function', function: { name: 'f', arguments: '{"a":1}' } }] },
      logprobs: null,
      finish_reason: 'tool_calls',
    });
    expect(chatCompletionBody('id', 1, 'm', { text: 'Let me check.', finishReason: 'tool_calls', usage, toolCalls }).choices[0]!.message.content).toBe('Let me check.');
  });

  it('formats tool call pieces: id, type and name on the first piece of a call only', () => {
    const f = chatChunkFormatter('chatcmpl-1', 10, 'm');
    expect(JSON.parse(f.toolCall({ type: 'tool_call', index: 1, id: 'c"2', name: 'g', arguments: '' })!)).toMatchObject({
      choices: [{ index: 0, delta: { tool_calls: [{ index: 1, id: 'c"2', type: 'function', function: { name: 'g', arguments: '' } }] }, finish_reason: null }],
    });
    const later = JSON.parse(f.toolCall({ type: 'tool_call', index: 1, arguments: '{"x":' })!) as { choices: Array<{ delta: { tool_calls: unknown[] } }> };
    expect(later.choices[0]!.delta.tool_calls).toEqual([{ index: 1, function: { arguments: '{"x":' } }]);
    expect(textChunkFormatter('cmpl-1', 10, 'm').toolCall({ type: 'tool_call', index: 0, id: 'c', name: 'f', arguments: '' })).toBeUndefined();
  });
});
