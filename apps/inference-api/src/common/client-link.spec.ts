import { describe, expect, it } from 'vitest';
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
