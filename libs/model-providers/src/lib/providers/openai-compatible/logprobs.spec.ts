import { describe, expect, it } from 'vitest';
import { ModelProviderError } from '../../contract/errors.js';
import { parseChatLogprobs, parseCompletionLogprobs, parseLogprobs } from './logprobs.js';

// The provider's logprobs end to end (fake upstream, odd upstream answers): openai-compatible.provider.spec.ts.
const chat = (raw: unknown, top = 5) => parseChatLogprobs(raw, top, 'l', 'choices[0].logprobs');
const completion = (raw: unknown, top = 5) => parseCompletionLogprobs(raw, top, 'l', 'choices[0].logprobs');

function thrown(operation: () => unknown): unknown {
  try {
    operation();
  } catch (error) {
    return error;
  }
  throw new Error('Expected the operation to throw');
}

describe('parseChatLogprobs', () => {
  it('reads OpenAI entries; bytes null or absent are left out, top_logprobs null is none', () => {
    const raw = {
      content: [
        { token: 'Hi', logprob: -0.25, bytes: [72, 105], top_logprobs: [{ token: 'Hi', logprob: -0.25, bytes: [72, 105] }, { token: 'Yo', logprob: -2, bytes: null }] },
        { token: '\u00e9', logprob: 0, bytes: null, top_logprobs: null },
        { token: '!', logprob: null },
      ],
      refusal: null,
    };
    expect(chat(raw)).toEqual([
      { token: 'Hi', logprob: -0.25, bytes: [72, 105], top: [{ token: 'Hi', logprob: -0.25, bytes: [72, 105] }, { token: 'Yo', logprob: -2 }] },
      { token: '\u00e9', logprob: 0, top: [] },
      { token: '!', logprob: null, top: [] },
    ]);
    expect(Object.keys(chat(raw)?.[1] ?? {})).not.toContain('bytes');
  });

  it('puts the alternatives most likely first (nulls last) and keeps at most the requested number', () => {
    // vLLM lists the sampled token first, whatever its rank.
    const raw = {
      content: [
        {
          token: 'b',
          logprob: -3,
          top_logprobs: [
            { token: 'b', logprob: -3 },
            { token: 'x', logprob: null },
            { token: 'a', logprob: -0.1 },
            { token: 'c', logprob: -1 },
          ],
        },
      ],
    };
    expect(chat(raw, 5)?.[0]?.top.map((t) => t.token)).toEqual(['a', 'c', 'b', 'x']);
    expect(chat(raw, 2)?.[0]?.top.map((t) => t.token)).toEqual(['a', 'c']);
    expect(chat(raw, 0)?.[0]?.top).toEqual([]);
    const sorted = [{ token: 'a', logprob: -1 }, { token: 'b', logprob: -1 }, { token: 'c', logprob: -2 }];
    expect(chat({ content: [{ token: 'a', logprob: -1, top_logprobs: sorted }] })?.[0]?.top).toEqual(sorted);
  });

  it('has no entries when content is null, absent or empty', () => {
    expect(chat({ content: null, refusal: null })).toBeUndefined();
    expect(chat({})).toBeUndefined();
    expect(chat({ content: [] })).toBeUndefined();
  });

  it.each([
    ['not an object', 'x', /choices\[0\]\.logprobs is not an object/],
    ['content not an array', { content: {} }, /content is not an array/],
    ['an entry not an object', { content: [3] }, /content\[0\] is not an object/],
    ['a token not a string', { content: [{ token: 1, logprob: -1 }] }, /content\[0\]\.token is not a string/],
    ['a logprob not a number', { content: [{ token: 'a', logprob: '-1' }] }, /content\[0\]\.logprob is not a finite number/],
    ['a logprob not finite', { content: [{ token: 'a', logprob: -Infinity }] }, /content\[0\]\.logprob is not a finite number/],
    ['a logprob missing', { content: [{ token: 'a' }] }, /content\[0\]\.logprob/],
    ['bytes not bytes', { content: [{ token: 'a', logprob: -1, bytes: [256] }] }, /content\[0\]\.bytes is not an array of bytes/],
    ['top_logprobs not an array', { content: [{ token: 'a', logprob: -1, top_logprobs: {} }] }, /top_logprobs is not an array/],
    ['an alternative without a token', { content: [{ token: 'a', logprob: -1, top_logprobs: [{ logprob: -1 }] }] }, /top_logprobs\[0\]\.token/],
  ])('rejects %s as a malformed upstream response', (_, raw, message) => {
    const error = thrown(() => chat(raw));
    expect(error).toBeInstanceOf(ModelProviderError);
    expect(error).toMatchObject({ code: 'upstream_error', message: expect.stringMatching(message) });
  });
});

describe('parseCompletionLogprobs', () => {
  it('reads the legacy arrays: one entry per token, top from its dict (null: none)', () => {
    const raw = {
      tokens: ['Once', ' upon', ' a'],
      token_logprobs: [null, -0.5, -1.25],
      top_logprobs: [null, { ' upon': -0.5, ' a': -1 }, {}],
      text_offset: [0, 4, 9],
    };
    expect(completion(raw)).toEqual([
      { token: 'Once', logprob: null, top: [] },
      { token: ' upon', logprob: -0.5, top: [{ token: ' upon', logprob: -0.5 }, { token: ' a', logprob: -1 }] },
      { token: ' a', logprob: -1.25, top: [] },
    ]);
    // top_logprobs null (logprobs: 0 on some servers); the sampled token beyond the requested number is cut.
    expect(completion({ tokens: ['x'], token_logprobs: [-1], top_logprobs: null })).toEqual([{ token: 'x', logprob: -1, top: [] }]);
    expect(completion({ tokens: ['x'], token_logprobs: [-1], top_logprobs: [{ y: -0.5, x: -1 }] }, 1)).toEqual([
      { token: 'x', logprob: -1, top: [{ token: 'y', logprob: -0.5 }] },
    ]);
  });

  it("reads llama.cpp server's chat form, and has no entries when there are none", () => {
    expect(completion({ content: [{ token: 'a', logprob: -1, bytes: [97], top_logprobs: [] }] })).toEqual([{ token: 'a', logprob: -1, bytes: [97], top: [] }]);
    expect(completion({ tokens: [], token_logprobs: [], top_logprobs: [] })).toBeUndefined();
    expect(completion({ tokens: null })).toBeUndefined();
    expect(parseLogprobs(false, { tokens: ['a'], token_logprobs: [-1] }, 0, 'l', 'w')).toEqual([{ token: 'a', logprob: -1, top: [] }]);
    expect(parseLogprobs(true, { content: null }, 0, 'l', 'w')).toBeUndefined();
  });

  it.each([
    ['tokens not an array', { tokens: 'a', token_logprobs: [-1] }],
    ['token_logprobs missing', { tokens: ['a'] }],
    ['arrays of different lengths', { tokens: ['a', 'b'], token_logprobs: [-1] }],
    ['top_logprobs of another length', { tokens: ['a', 'b'], token_logprobs: [-1, -2], top_logprobs: [{}] }],
    ['a token not a string', { tokens: [1], token_logprobs: [-1] }],
    ['a logprob not finite', { tokens: ['a'], token_logprobs: [Number.NaN] }],
    ['a dict value not a number', { tokens: ['a'], token_logprobs: [-1], top_logprobs: [{ a: 'x' }] }],
    ['a dict not an object', { tokens: ['a'], token_logprobs: [-1], top_logprobs: [[-1]] }],
  ])('rejects %s as a malformed upstream response', (_, raw) => {
    const error = thrown(() => completion(raw));
    expect(error).toBeInstanceOf(ModelProviderError);
    expect(error).toMatchObject({ code: 'upstream_error', message: expect.stringMatching(/malformed upstream response \(choices\[0\]\.logprobs/) });
  });
});
