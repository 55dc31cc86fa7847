import type { StreamPart } from '@infer/model-providers';
import { describe, expect, it } from 'vitest';
import { cacheKey } from '../cache/cache-key.js';
import { choiceJobs, mergeChoices } from './choices.js';
import { combinedCacheHeaders } from './completion-responder.js';
import type { InferenceJob } from './inference.service.js';
import { chatCompletionBodyOf, textChunkFormatter } from './openai-format.js';

const job = (request: Record<string, unknown>): InferenceJob =>
  ({ kind: 'chat', model: 'm', request: { messages: [{ role: 'user', content: 'hi' }], ...request } }) as InferenceJob;

const finish = (completionTokens: number): StreamPart => ({ type: 'finish', finishReason: 'stop', usage: { promptTokens: 3, completionTokens } });

async function* parts(list: readonly StreamPart[], delayMs = 0, log?: string[], name?: string): AsyncGenerator<StreamPart> {
  try {
    for (const part of list) {
      if (delayMs > 0) await new Promise((resolve) => setTimeout(resolve, delayMs));
      yield part;
    }
  } finally {
    log?.push(`${name} closed`);
  }
}

describe('n > 1: choices', () => {
  it('choice jobs: seed + i with a seed; the same job when greedy; a keyed choice index when sampling without a seed', () => {
    const seeded = choiceJobs(job({ temperature: 1, seed: 7 }), 3);
    expect(seeded.map((j) => j.request.seed)).toEqual([7, 8, 9]);
    expect(seeded[0]).toEqual(job({ temperature: 1, seed: 7 }));
    const greedy = choiceJobs(job({ temperature: 0 }), 3);
    expect(new Set(greedy.map((j) => cacheKey(j, null))).size).toBe(1);
    const sampled = choiceJobs(job({ temperature: 0.8 }), 3);
    expect(sampled.map((j) => j.choice)).toEqual([undefined, 1, 2]);
    expect(new Set(sampled.map((j) => cacheKey(j, null))).size).toBe(3);
    // Choice 0 keeps the key of the same request with n = 1.
    expect(cacheKey(sampled[0]!, null)).toBe(cacheKey(job({ temperature: 0.8 }), null));
  });

  it('merges streams as their parts come, each marked with its index', async () => {
    const merged: Array<{ choice?: number; type: string }> = [];
    const a = parts([{ type: 'delta', text: 'a1' }, { type: 'delta', text: 'a2' }, finish(2)], 15);
    const b = parts([{ type: 'delta', text: 'b1' }, finish(1)], 1);
    for await (const part of mergeChoices([a, b])) merged.push({ choice: part.choice, type: part.type === 'delta' ? part.text : part.type });
    expect(merged).toEqual([
      { choice: 1, type: 'b1' },
      { choice: 1, type: 'finish' },
      { choice: 0, type: 'a1' },
      { choice: 0, type: 'a2' },
      { choice: 0, type: 'finish' },
    ]);
  });

  it('an error in one stream ends the merge with it and closes the others; so does the consumer leaving', async () => {
    const log: string[] = [];
    async function* failing(): AsyncGenerator<StreamPart> {
      yield { type: 'delta', text: 'x' };
      throw new Error('upstream broke');
    }
    const slow = parts([{ type: 'delta', text: 's1' }, { type: 'delta', text: 's2' }, { type: 'delta', text: 's3' }, finish(3)], 5, log, 'slow');
    const seen: string[] = [];
    await expect(
      (async () => {
        for await (const part of mergeChoices([slow, failing()])) if (part.type === 'delta') seen.push(part.text);
      })(),
    ).rejects.toThrow('upstream broke');
    await new Promise((resolve) => setTimeout(resolve, 30));
    expect(log).toEqual(['slow closed']);
    expect(seen).not.toContain('s3');

    const log2: string[] = [];
    const x = parts([{ type: 'delta', text: 'x1' }, { type: 'delta', text: 'x2' }, finish(2)], 2, log2, 'x');
    const y = parts([{ type: 'delta', text: 'y1' }, { type: 'delta', text: 'y2' }, finish(2)], 3, log2, 'y');
    for await (const part of mergeChoices([x, y])) if (part.type === 'delta') break;
    await new Promise((resolve) => setTimeout(resolve, 30));
    expect(log2.sort()).toEqual(['x closed', 'y closed']);
  });

  it('bodies: one choice per result with its index; usage counts the prompt once and every completion', () => {
    const usage = { promptTokens: 5, completionTokens: 2, cachedPromptTokens: 4 };
    const body = chatCompletionBodyOf('id', 1, 'm', [
      { text: 'a', finishReason: 'stop', usage },
      { text: 'b', finishReason: 'length', usage: { promptTokens: 5, completionTokens: 3 } },
    ]);
    expect(body.choices.map((c) => [c.index, c.message.content, c.finish_reason])).toEqual([
      [0, 'a', 'stop'],
      [1, 'b', 'length'],
    ]);
    expect(body.usage).toEqual({ prompt_tokens: 5, completion_tokens: 5, total_tokens: 10, prompt_tokens_details: { cached_tokens: 4 } });
  });

  it('stream chunks carry their choice index; text offsets are per choice', () => {
    const f = textChunkFormatter('c', 1, 'm');
    const entry = (token: string) => [{ token, logprob: -1, top: [] }];
    expect(JSON.parse(f.delta('ab', entry('ab'), 0)).choices[0]).toMatchObject({ index: 0, logprobs: { text_offset: [0] } });
    expect(JSON.parse(f.delta('c', entry('c'), 1)).choices[0]).toMatchObject({ index: 1, logprobs: { text_offset: [0] } });
    expect(JSON.parse(f.delta('d', entry('d'), 0)).choices[0]).toMatchObject({ index: 0, logprobs: { text_offset: [2] } });
    expect(JSON.parse(f.finish('stop', 1)).choices[0]).toMatchObject({ index: 1, finish_reason: 'stop' });
  });

  it('cache headers of several choices: MISS if any reached the model, HIT (oldest age) if all were cached, else BYPASS', () => {
    const miss = { 'x-cache': 'MISS' };
    const hit = (age: number) => ({ 'x-cache': 'HIT', age: String(age) });
    const bypass = { 'x-cache': 'BYPASS' };
    expect(combinedCacheHeaders([hit(0), miss, hit(3)])).toEqual(miss);
    expect(combinedCacheHeaders([hit(1), hit(5), hit(2)])).toEqual(hit(5));
    expect(combinedCacheHeaders([bypass, bypass])).toEqual(bypass);
    expect(combinedCacheHeaders([undefined, undefined])).toBeUndefined();
  });
});
