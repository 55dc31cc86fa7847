import { once } from 'node:events';
import OpenAI from 'openai';
import { type FakeUpstream, fakeReplyText, startFakeUpstream } from '@infer/model-providers/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type ApiServer, startApiServer } from '../support/api-server.js';
import { fakeModelsYaml } from '../support/load.js';
import { apiError } from '../support/openai-errors.js';
import { type RedisPair, startRedisPair } from '../support/redis-pair.js';
import type { RedisServer } from '../support/redis-server.js';

/**
 * Background responses (`background: true`, GET to poll, POST /v1/responses/{id}/cancel) with the
 * official `openai` client against real server processes on a fake upstream: in one process, and
 * across two processes sharing a real redis-server (cancel on one, the run on the other).
 */

type Response = OpenAI.Responses.Response;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Polls until the response leaves queued/in_progress (as the SDK docs show). */
async function settle(client: OpenAI, id: string, timeoutMs = 15_000): Promise<Response> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const response = await client.responses.retrieve(id);
    if (response.status !== 'queued' && response.status !== 'in_progress') return response;
    if (Date.now() > deadline) throw new Error(`response ${id} still ${response.status}`);
    await sleep(50);
  }
}


const chatCalls = (upstream: FakeUpstream) => upstream.requests.filter((r) => r.path.endsWith('/chat/completions')).length;

describe('background responses (in-process store)', () => {
  let server: ApiServer;
  let upstream: FakeUpstream;
  let client: OpenAI;

  beforeAll(async () => {
    upstream = await startFakeUpstream({ tokens: 6 });
    server = await startApiServer({ env: { CACHE_ENABLED: 'false' }, modelsYaml: fakeModelsYaml(upstream.url, 'm') });
    client = new OpenAI({ baseURL: `${server.url}/v1`, apiKey: 'test-key', maxRetries: 0 });
  });

  afterAll(async () => {
    await server?.stop();
    await upstream?.close();
  });

  it('answers queued at once, runs afterwards, and GET shows it completed with the output', async () => {
    upstream.configure({ latencyMs: 400 });
    const started = Date.now();
    const created = await client.responses.create({ model: 'm', input: 'Tell me later', background: true });
    expect(Date.now() - started).toBeLessThan(300);
    expect(created).toMatchObject({ status: 'queued', background: true, output: [], usage: null });
    expect((await client.responses.retrieve(created.id)).status).toBe('in_progress');
    const done = await settle(client, created.id);
    upstream.configure({ latencyMs: 0 });
    expect(done).toMatchObject({ id: created.id, status: 'completed', background: true });
    expect(done.output_text).toBe(fakeReplyText('Tell me later', 6));
    expect(done.usage?.output_tokens).toBe(6);
    // A finished background response continues like any other.
    const next = await client.responses.create({ model: 'm', input: 'And now?', previous_response_id: created.id });
    expect(next.status).toBe('completed');
  });

  it('cancel stops the upstream call; the response stays cancelled; cancelling again answers the same', async () => {
    upstream.configure({ latencyMs: 3_000 });
    const before = chatCalls(upstream);
    const created = await client.responses.create({ model: 'm', input: 'A long one', background: true });
    await sleep(200);
    expect(upstream.inFlight).toBe(1);
    const cancelled = await client.responses.cancel(created.id);
    expect(cancelled).toMatchObject({ id: created.id, status: 'cancelled', background: true });
    await sleep(200);
    // The call to the model was aborted, not left to finish.
    expect(upstream.inFlight).toBe(0);
    expect(chatCalls(upstream) - before).toBe(1);
    expect((await client.responses.retrieve(created.id)).status).toBe('cancelled');
    expect((await client.responses.cancel(created.id)).status).toBe('cancelled');
    upstream.configure({ latencyMs: 0 });
    // Nothing to continue.
    const error = await apiError(client.responses.create({ model: 'm', input: 'x', previous_response_id: created.id }), OpenAI.BadRequestError);
    expect(error).toMatchObject({ param: 'previous_response_id', message: expect.stringContaining("its status is 'cancelled'") });
  });

  it('deleting a running background response stops its upstream call', async () => {
    upstream.configure({ latencyMs: 3_000 });
    const created = await client.responses.create({ model: 'm', input: 'Deleted midway', background: true });
    await sleep(200);
    expect(upstream.inFlight).toBe(1);
    await client.responses.delete(created.id);
    await sleep(200);
    upstream.configure({ latencyMs: 0 });
    expect(upstream.inFlight).toBe(0);
    await apiError(client.responses.retrieve(created.id), OpenAI.NotFoundError);
  });

  it('a failed run is a failed response with the error a client would have been told', async () => {
    upstream.configure({ failNext: { count: 10, status: 500, body: { error: { message: 'GPU on fire', type: 'server_error', param: null, code: null } } } });
    const created = await client.responses.create({ model: 'm', input: 'Doomed', background: true });
    const failed = await settle(client, created.id);
    upstream.configure({ failNext: { count: 0 } });
    expect(failed).toMatchObject({ status: 'failed', error: { code: 'server_error', message: 'The model server returned an error (HTTP 500): GPU on fire' }, output: [] });
  });

  it('background with stream: the events as the run goes (queued, in_progress, then its output); the client may leave and resume with GET ?stream=true', async () => {
    upstream.configure({ latencyMs: 300 });
    try {
      const events: Array<{ type: string; sequence_number: number; [key: string]: unknown }> = [];
      for await (const event of await client.responses.create({ model: 'm', input: 'Streamed later', background: true, stream: true })) events.push(event as never);
      expect(events.map((e) => e.sequence_number)).toEqual(events.map((_, i) => i));
      expect(events.slice(0, 3).map((e) => [e.type, (e['response'] as { status: string }).status])).toEqual([
        ['response.created', 'queued'],
        ['response.queued', 'queued'],
        ['response.in_progress', 'in_progress'],
      ]);
      const last = events.at(-1)!;
      expect(last.type).toBe('response.completed');
      const final = last['response'] as Response;
      expect(final.background).toBe(true);
      expect(events.filter((e) => e.type === 'response.output_text.delta').map((e) => e['delta']).join('')).toBe(fakeReplyText('Streamed later', 6));
      // The same events again, all of them or from where a client left off; the SDK's resume helper gets the same response.
      const again: typeof events = [];
      for await (const event of await client.responses.retrieve(final.id, { stream: true })) again.push(event as never);
      expect(again.map((e) => [e.type, e.sequence_number])).toEqual(events.map((e) => [e.type, e.sequence_number]));
      expect(again.at(-1)!['response']).toEqual(final);
      const resumed: typeof events = [];
      for await (const event of await client.responses.retrieve(final.id, { stream: true, starting_after: 4 })) resumed.push(event as never);
      expect(resumed.map((e) => e.sequence_number)).toEqual(events.slice(5).map((e) => e.sequence_number));
      expect((await client.responses.stream({ response_id: final.id, starting_after: 2 }).finalResponse()).output_text).toBe(final.output_text);

      // A client that leaves early: the response still finishes.
      const early = await client.responses.create({ model: 'm', input: 'Left early', background: true, stream: true });
      let id = '';
      for await (const event of early) {
        id = (event as { response?: { id: string } }).response?.id ?? id;
        break;
      }
      expect((await settle(client, id)).output_text).toBe(fakeReplyText('Left early', 6));
    } finally {
      upstream.configure({ latencyMs: 0 });
    }
  });

  it('GET ?stream=true of a cancelled response ends with an error event; of an unknown one is a 404', async () => {
    upstream.configure({ latencyMs: 5_000 });
    try {
      const slow = await client.responses.create({ model: 'm', input: 'Cancelled while followed', background: true });
      const followed = fetch(`${server.url}/v1/responses/${slow.id}?stream=true`).then((res) => res.text());
      await sleep(200);
      await client.responses.cancel(slow.id);
      const text = await followed;
      expect(text).toContain('event: response.queued');
      expect(text.trim().split('\n\n').at(-1)).toMatch(/^event: error\ndata: \{"type":"error","sequence_number":\d+,"code":"response_cancelled"/);
    } finally {
      upstream.configure({ latencyMs: 0 });
    }
    await apiError(client.responses.retrieve('resp_unknown', { stream: true }).then(async (stream) => { for await (const _ of stream) void _; }), OpenAI.NotFoundError);
  });

  it('refuses what it cannot do: cancel a finished or synchronous response, background without store', async () => {
    const sync = await client.responses.create({ model: 'm', input: 'Now' });
    expect((await apiError(client.responses.cancel(sync.id), OpenAI.BadRequestError)).message).toMatch(/synchronous response/);
    const bg = await client.responses.create({ model: 'm', input: 'Soon', background: true });
    await settle(client, bg.id);
    expect((await apiError(client.responses.cancel(bg.id), OpenAI.BadRequestError)).message).toMatch(/already finished \(status 'completed'\)/);
    await apiError(client.responses.cancel('resp_unknown'), OpenAI.NotFoundError);
    const post = (body: object) =>
      fetch(`${server.url}/v1/responses`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ model: 'm', input: 'x', ...body }) });
    const unstored = await post({ background: true, store: false });
    expect(unstored.status).toBe(400);
    expect(await unstored.json()).toMatchObject({ error: { param: 'store', message: 'Background mode requires `store` to be true.' } });
  });
});

describe('background responses across processes (Redis)', () => {
  let pair: RedisPair;
  let redis: RedisServer;
  let upstream: FakeUpstream;
  let a: ApiServer;
  let b: ApiServer;

  beforeAll(async () => {
    pair = await startRedisPair(4);
    ({ redis, upstream, a, b } = pair);
  }, 60_000);

  afterAll(() => pair?.stop());

  it('runs on the process that took it; another process sees it finish, and a cancel there stops it within a second', async () => {
    const onA = new OpenAI({ baseURL: `${a.url}/v1`, apiKey: 'k', maxRetries: 0 });
    const onB = new OpenAI({ baseURL: `${b.url}/v1`, apiKey: 'k', maxRetries: 0 });
    const quick = await onA.responses.create({ model: 'm', input: 'Quick', background: true });
    expect((await settle(onB, quick.id)).output_text).toBe(fakeReplyText('Quick', 4));

    upstream.configure({ latencyMs: 5_000 });
    const slow = await onA.responses.create({ model: 'm', input: 'Slow', background: true });
    await sleep(300);
    expect(upstream.inFlight).toBe(1);
    expect((await onB.responses.cancel(slow.id)).status).toBe('cancelled');
    // A looks at the record every second: its upstream call is aborted well before the 5 s it would take.
    const deadline = Date.now() + 2_500;
    while (upstream.inFlight > 0 && Date.now() < deadline) await sleep(50);
    expect(upstream.inFlight).toBe(0);
    upstream.configure({ latencyMs: 0 });
    await sleep(300);
    expect((await onA.responses.retrieve(slow.id)).status).toBe('cancelled');
  });

  it('GET ?stream=true on another process follows a background response running here until it ends', async () => {
    const onA = new OpenAI({ baseURL: `${a.url}/v1`, apiKey: 'k', maxRetries: 0 });
    const onB = new OpenAI({ baseURL: `${b.url}/v1`, apiKey: 'k', maxRetries: 0 });
    upstream.configure({ latencyMs: 1_200 });
    try {
      const running = await onA.responses.create({ model: 'm', input: 'Followed from elsewhere', background: true });
      const events: Array<{ type: string }> = [];
      for await (const event of await onB.responses.retrieve(running.id, { stream: true })) events.push(event);
      expect(events[0]!.type).toBe('response.created');
      expect(events.at(-1)).toMatchObject({
        type: 'response.completed',
        response: { id: running.id, output: [{ content: [{ text: fakeReplyText('Followed from elsewhere', 4) }] }] },
      });
    } finally {
      upstream.configure({ latencyMs: 0 });
    }
  });

  it('a process shutting down lets its background responses finish during the drain, and records those still running at the deadline as failed', async () => {
    const start = (shutdownMs: number, id: string) =>
      startApiServer({
        env: { CACHE_ENABLED: 'false', REDIS_URL: redis.url, INSTANCE_ID: id, SHUTDOWN_TIMEOUT_MS: String(shutdownMs) },
        modelsYaml: fakeModelsYaml(upstream.url, 'm'),
      });
    const onA = new OpenAI({ baseURL: `${a.url}/v1`, apiKey: 'k', maxRetries: 0 });

    upstream.configure({ latencyMs: 800 });
    const patient = await start(5_000, 'c');
    const finishing = await new OpenAI({ baseURL: `${patient.url}/v1`, apiKey: 'k', maxRetries: 0 }).responses.create({ model: 'm', input: 'Almost there', background: true });
    await sleep(200);
    expect((await patient.stop()).code).toBe(0);
    expect(await onA.responses.retrieve(finishing.id)).toMatchObject({ status: 'completed', output_text: fakeReplyText('Almost there', 4) });

    upstream.configure({ latencyMs: 10_000 });
    const hasty = await start(500, 'd');
    const running = await new OpenAI({ baseURL: `${hasty.url}/v1`, apiKey: 'k', maxRetries: 0 }).responses.create({ model: 'm', input: 'Interrupted', background: true });
    await sleep(200);
    const stopped = await hasty.stop();
    upstream.configure({ latencyMs: 0 });
    expect(stopped.code).toBe(0);
    expect(await onA.responses.retrieve(running.id)).toMatchObject({
      status: 'failed',
      error: { code: 'server_error', message: 'The server shut down before this response finished.' },
    });
  });

  it('a process that dies without shutting down: its background response reads as failed once its lease lapses; a long run keeps its lease', async () => {
    const env = { CACHE_ENABLED: 'false', REDIS_URL: redis.url, RESPONSES_BACKGROUND_LEASE_SECONDS: '3' };
    const [doomed, survivor] = await Promise.all([
      startApiServer({ env: { ...env, INSTANCE_ID: 'e' }, modelsYaml: fakeModelsYaml(upstream.url, 'm') }),
      startApiServer({ env: { ...env, INSTANCE_ID: 'f' }, modelsYaml: fakeModelsYaml(upstream.url, 'm') }),
    ]);
    try {
      const onDoomed = new OpenAI({ baseURL: `${doomed.url}/v1`, apiKey: 'k', maxRetries: 0 });
      const onSurvivor = new OpenAI({ baseURL: `${survivor.url}/v1`, apiKey: 'k', maxRetries: 0 });
      upstream.configure({ latencyMs: 5_000 });
      // Runs on the survivor for 5 s, longer than the 3 s lease: renewed, it is never taken for dead.
      const long = await onSurvivor.responses.create({ model: 'm', input: 'Long', background: true });
      const lost = await onDoomed.responses.create({ model: 'm', input: 'Lost', background: true });
      await sleep(300);
      doomed.process.kill('SIGKILL');
      await once(doomed.process, 'exit');
      const killedAt = Date.now();
      // Still leased: a dead process cannot be told from a slow one yet.
      expect((await onSurvivor.responses.retrieve(lost.id)).status).toBe('in_progress');
      const failed = await settle(onSurvivor, lost.id, 8_000);
      expect(failed).toMatchObject({
        status: 'failed',
        error: { code: 'server_error', message: 'The server process running this response stopped before it recorded the end (it stopped, or could not reach the response store).' },
      });
      expect(Date.now() - killedAt).toBeLessThan(4_500);
      expect(survivor.output()).toContain('recorded a background response as failed');
      // Recorded: every process reads the same from now on.
      expect((await new OpenAI({ baseURL: `${a.url}/v1`, apiKey: 'k', maxRetries: 0 }).responses.retrieve(lost.id)).status).toBe('failed');
      expect(await settle(onSurvivor, long.id, 10_000)).toMatchObject({ status: 'completed', output_text: fakeReplyText('Long', 4) });
    } finally {
      upstream.configure({ latencyMs: 0 });
      await survivor.stop();
    }
  }, 30_000);
});
