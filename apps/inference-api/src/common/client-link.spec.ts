import { describe, expect, it } from 'vitest';
import { abortControllers } from './abort-pool.js';
import { ResponseClient, SignalClient } from './client-link.js';
import { fakeResponse } from './fake-response.testing.js';



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

  it('gives its controller back to the pool when the response completed, not when the client left', () => {
    const done = fakeResponse();
    const kept = new ResponseClient(done);
    const signal = kept.signal;
    const before = abortControllers.size;
    done.finish();
    expect(abortControllers.size).toBe(before + 1);
    expect(abortControllers.acquire().signal).toBe(signal);

    const dropped = fakeResponse();
    const left = new ResponseClient(dropped);
    void left.signal;
    dropped.drop();
    expect(abortControllers.size).toBe(before);
  });

  it('does not give back a controller it lent', () => {
    const res = fakeResponse();
    const client = new ResponseClient(res);
    client.adopt();
    const before = abortControllers.size;
    res.finish();
    expect(abortControllers.size).toBe(before);
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
