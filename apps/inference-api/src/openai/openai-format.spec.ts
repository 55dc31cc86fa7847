import { describe, expect, it } from 'vitest';
import { batchUsage, chatChunkFormatter, chatCompletionBody, choicesUsage, completionId, textChunkFormatter, textCompletionBody } from './openai-format.js';

describe('openai-format', () => {
  it('adds up a batch: each prompt once (with its cached tokens), every completion', () => {
    const u = (promptTokens: number, completionTokens: number, cachedPromptTokens?: number) =>
      cachedPromptTokens === undefined ? { promptTokens, completionTokens } : { promptTokens, completionTokens, cachedPromptTokens };
    // Two prompts, n = 2: prompt tokens 5 and 7 once each, 4 completions.
    expect(batchUsage([u(5, 1), u(5, 2), u(7, 3), u(7, 4)], 2)).toEqual({ promptTokens: 12, completionTokens: 10 });
    expect(batchUsage([u(5, 1, 4), u(7, 2)], 1)).toEqual({ promptTokens: 12, completionTokens: 3, cachedPromptTokens: 4 });
    // One prompt: choicesUsage.
    expect(batchUsage([u(5, 1), u(5, 2)], 2)).toEqual(choicesUsage([u(5, 1), u(5, 2)]));
  });

  it('makes OpenAI-style ids', () => {
    expect(completionId('chatcmpl')).toMatch(/^chatcmpl-[0-9a-f]{24}$/);
    expect(completionId('cmpl')).toMatch(/^cmpl-[0-9a-f]{24}$/);
    // Drawn from a pool refilled every 341 ids: unique across refills.
    const ids = new Set(Array.from({ length: 2_000 }, () => completionId('chatcmpl')));
    expect(ids.size).toBe(2_000);
  });

  it('formats chat chunks as valid JSON in the OpenAI shape', () => {
    const f = chatChunkFormatter('chatcmpl-1', 10, 'm"odel');
    expect(JSON.parse(f.start(0)!)).toMatchObject({ object: 'chat.completion.chunk', model: 'm"odel', choices: [{ delta: { role: 'assistant' } }] });
    expect(JSON.parse(f.delta('he said "hi"\n', undefined, 0))).toMatchObject({ choices: [{ index: 0, delta: { content: 'he said "hi"\n' }, finish_reason: null }] });
    expect(JSON.parse(f.finish('length', 0))).toMatchObject({ choices: [{ delta: {}, finish_reason: 'length' }] });
    expect(JSON.parse(f.usage({ promptTokens: 3, completionTokens: 4 }))).toMatchObject({
      choices: [],
      usage: { prompt_tokens: 3, completion_tokens: 4, total_tokens: 7 },
    });
  });

  it('formats text completion chunks', () => {
    const f = textChunkFormatter('cmpl-1', 10, 'm');
    expect(f.start(0)).toBeUndefined();
    expect(JSON.parse(f.delta('x', undefined, 0))).toMatchObject({ object: 'text_completion', choices: [{ text: 'x', finish_reason: null }] });
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
    expect(JSON.parse(f.toolCall({ type: 'tool_call', index: 1, id: 'c"2', name: 'g', arguments: '' }, 0)!)).toMatchObject({
      choices: [{ index: 0, delta: { tool_calls: [{ index: 1, id: 'c"2', type: 'function', function: { name: 'g', arguments: '' } }] }, finish_reason: null }],
    });
    const later = JSON.parse(f.toolCall({ type: 'tool_call', index: 1, arguments: '{"x":' }, 0)!) as { choices: Array<{ delta: { tool_calls: unknown[] } }> };
    expect(later.choices[0]!.delta.tool_calls).toEqual([{ index: 1, function: { arguments: '{"x":' } }]);
    expect(textChunkFormatter('cmpl-1', 10, 'm').toolCall({ type: 'tool_call', index: 0, id: 'c', name: 'f', arguments: '' }, 0)).toBeUndefined();
  });

  describe('logprobs', () => {
    const usage = { promptTokens: 1, completionTokens: 2 };
    const logprobs = [
      { token: 'He', logprob: -0.25, bytes: [72, 101], top: [{ token: 'He', logprob: -0.25, bytes: [72, 101] }, { token: 'Hi', logprob: -1.5 }] },
      { token: 'llo', logprob: -0.5, top: [] },
    ];

    it('chat: choices[].logprobs.content with top_logprobs, bytes null when unknown', () => {
      const body = chatCompletionBody('id', 1, 'm', { text: 'Hello', finishReason: 'stop', usage, logprobs });
      expect(body.choices[0]!.logprobs).toEqual({
        content: [
          { token: 'He', logprob: -0.25, bytes: [72, 101], top_logprobs: [{ token: 'He', logprob: -0.25, bytes: [72, 101] }, { token: 'Hi', logprob: -1.5, bytes: null }] },
          { token: 'llo', logprob: -0.5, bytes: null, top_logprobs: [] },
        ],
        refusal: null,
      });
      expect(chatCompletionBody('id', 1, 'm', { text: 'Hello', finishReason: 'stop', usage }).choices[0]!.logprobs).toBeNull();
    });

    it('text completions: the legacy parallel arrays, text_offset into the text', () => {
      const body = textCompletionBody('id', 1, 'm', { text: 'Hello', finishReason: 'stop', usage, logprobs });
      expect(body.choices[0]!.logprobs).toEqual({
        tokens: ['He', 'llo'],
        token_logprobs: [-0.25, -0.5],
        top_logprobs: [{ He: -0.25, Hi: -1.5 }, {}],
        text_offset: [0, 2],
      });
      expect(textCompletionBody('id', 1, 'm', { text: 'Hello', finishReason: 'stop', usage }).choices[0]!.logprobs).toBeNull();
    });

    it('chunks carry the logprobs of their tokens; text offsets continue across chunks', () => {
      const chat = chatChunkFormatter('c', 1, 'm');
      expect(JSON.parse(chat.delta('He', [logprobs[0]!], 0)).choices[0].logprobs.content).toEqual([
        { token: 'He', logprob: -0.25, bytes: [72, 101], top_logprobs: [{ token: 'He', logprob: -0.25, bytes: [72, 101] }, { token: 'Hi', logprob: -1.5, bytes: null }] },
      ]);
      expect(JSON.parse(chat.delta('x', undefined, 0)).choices[0].logprobs).toBeNull();
      const text = textChunkFormatter('c', 1, 'm');
      expect(JSON.parse(text.delta('He', [logprobs[0]!], 0)).choices[0].logprobs).toEqual({
        tokens: ['He'],
        token_logprobs: [-0.25],
        top_logprobs: [{ He: -0.25, Hi: -1.5 }],
        text_offset: [0],
      });
      expect(JSON.parse(text.delta('llo', [logprobs[1]!], 0)).choices[0].logprobs.text_offset).toEqual([2]);
      expect(JSON.parse(text.delta('!', undefined, 0)).choices[0].logprobs).toBeNull();
      expect(JSON.parse(text.delta('', [{ token: '?', logprob: -2, top: [] }], 0)).choices[0].logprobs.text_offset).toEqual([6]);
    });
  });
});
