import { EventEmitter } from 'node:events';
import type { ServerResponse } from 'node:http';
import { describe, expect, it } from 'vitest';
import { ResponseClient, SignalClient } from './client-link.js';

/** The parts of a ServerResponse that ResponseClient watches. */
function fakeResponse(): ServerResponse & { drop(): void; finish(): void } {
  const res = new EventEmitter() as EventEmitter & { destroyed: boolean; writableFinished: boolean; drop(): void; finish(): void };
  res.destroyed = false;
  res.writableFinished = false;
  res.drop = () => {
    res.destroyed = true;
    res.emit('close');
  };
  res.finish = () => {
    res.writableFinished = true;
    res.emit('close');
  };
  return res as unknown as ServerResponse & { drop(): void; finish(): void };
}


describe('ResponseClient', () => {
  it('creates its AbortSignal only on demand, aborted when the client leaves early', () => {
    const res = fakeResponse();
    const client = new ResponseClient(res);
    let gone = 0;
    client.onGone(() => gone++);
    const signal = client.signal;
    expect(signal.aborted).toBe(false);
    res.drop();
    expect(signal.aborted).toBe(true);
    expect(client.gone).toBe(true);
    expect(gone).toBe(1);
    client.onGone(() => gone++); // late registration fires at once
    expect(gone).toBe(2);
  });

  it('does not fire when the response finished normally', () => {
    const res = fakeResponse();
    const client = new ResponseClient(res);
    let gone = 0;
    client.onGone(() => gone++);
    const signal = client.signal;
    res.finish();
    expect([gone, signal.aborted, client.gone]).toEqual([0, false, false]);
  });

  it('lends its controller: once adopted, the client leaving no longer aborts it', () => {
    const res = fakeResponse();
    const client = new ResponseClient(res);
    const controller = client.adopt();
    let gone = 0;
    const unregister = client.onGone(() => gone++);
    unregister();
    res.drop();
    expect(controller.signal.aborted).toBe(false);
    expect(client.gone).toBe(true);
    expect(gone).toBe(0);
  });
});

describe('SignalClient', () => {
  it('follows its signal', () => {
    const controller = new AbortController();
    const client = new SignalClient(controller.signal);
    let gone = 0;
    client.onGone(() => gone++);
    expect(client.gone).toBe(false);
    controller.abort();
    expect([client.gone, gone]).toEqual([true, 1]);
  });
});
