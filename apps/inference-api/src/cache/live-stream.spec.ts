import type { StreamPart } from '@infer/model-providers';
import { describe, expect, it } from 'vitest';
import { SignalClient } from '../common/client-link.js';
import { LiveStream } from './live-stream.js';

async function collect(parts: AsyncIterable<StreamPart>): Promise<StreamPart[]> {
  const out: StreamPart[] = [];
  for await (const part of parts) out.push(part);
  return out;
}

const finish: StreamPart = { type: 'finish', finishReason: 'stop', usage: { promptTokens: 1, completionTokens: 2 } };

describe('LiveStream', () => {
  it('gives every consumer the whole sequence, late joiners included', async () => {
    const live = new LiveStream();
    let closed = 0;
    const early = collect(live.subscribe(new SignalClient(new AbortController().signal), () => closed++));
    live.push({ type: 'delta', text: 'a' });
    await new Promise((r) => setTimeout(r, 5));
    const late = collect(live.subscribe(new SignalClient(new AbortController().signal), () => closed++));
    live.push({ type: 'delta', text: 'b' });
    live.push(finish);
    live.end();
    const expected = [{ type: 'delta', text: 'a' }, { type: 'delta', text: 'b' }, finish];
    expect(await early).toEqual(expected);
    expect(await late).toEqual(expected);
    expect(await collect(live.subscribe(new SignalClient(new AbortController().signal), () => closed++))).toEqual(expected);
    expect(closed).toBe(3);
  });

  it('hands the producer error to every consumer', async () => {
    const live = new LiveStream();
    const consumer = collect(live.subscribe(new SignalClient(new AbortController().signal), () => undefined));
    live.push({ type: 'delta', text: 'a' });
    live.fail(new Error('upstream broke'));
    await expect(consumer).rejects.toThrow('upstream broke');
    await expect(collect(live.subscribe(new SignalClient(new AbortController().signal), () => undefined))).rejects.toThrow('upstream broke');
  });

  it('stops waiting when the consumer aborts, and closes once', async () => {
    const live = new LiveStream();
    const controller = new AbortController();
    let closed = 0;
    const iterator = live.subscribe(new SignalClient(controller.signal), () => closed++);
    const pending = iterator.next();
    controller.abort();
    await expect(pending).rejects.toMatchObject({ code: 'aborted' });
    await iterator.return?.();
    expect(closed).toBe(1);
  });

  it('closes on return() from an early exit', async () => {
    const live = new LiveStream();
    let closed = 0;
    live.push({ type: 'delta', text: 'a' });
    for await (const _part of live.subscribe(new SignalClient(new AbortController().signal), () => closed++)) break;
    expect(closed).toBe(1);
  });
});
