import { createHash } from 'node:crypto';
import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import OpenAI from 'openai';
import { type FakeUpstream, startFakeUpstream } from '@infer/model-providers/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type ApiServer, startApiServer } from '../support/api-server.js';
import { freePort } from '../support/free-port.js';
import { fakeModelsYaml } from '../support/load.js';
import { type RedisServer, startRedisServer } from '../support/redis-server.js';

const hex = (key: string) => createHash('sha256').update(key).digest('hex');

/** API_KEYS_FILE: named keys with their own rate limit and model list, counted by name in the metrics. */
describe('named API keys (API_KEYS_FILE)', () => {
  let upstream: FakeUpstream;
  let server: ApiServer;
  let metricsPort: number;
  let dir: string;

  beforeAll(async () => {
    upstream = await startFakeUpstream({ tokens: 4 });
    dir = await mkdtemp(join(tmpdir(), 'infer-keys-'));
    const keysFile = join(dir, 'keys.yaml');
    await writeFile(
      keysFile,
      [
        'keys:',
        '  - name: narrow',
        '    key: sk-e2e-narrow',
        '    models: [m2]',
        '  - name: limited',
        // Given as its digest: the file holds no secret.
        `    sha256: ${hex('sk-e2e-limited')}`,
        '    rpm: 2',
        '  - name: wide',
        '    key: sk-e2e-wide',
      ].join('\n'),
    );
    metricsPort = await freePort();
    server = await startApiServer({
      env: { API_KEYS: 'sk-e2e-anon', API_KEYS_FILE: keysFile, CACHE_ENABLED: 'false', METRICS_PORT: String(metricsPort), LOG_LEVEL: 'info' },
      modelsYaml: fakeModelsYaml(upstream.url, 'm1') + fakeModelsYaml(upstream.url, 'm2').replace('models:\n', ''),
    });
  });

  afterAll(async () => {
    await server?.stop();
    await upstream?.close();
  });

  const sdk = (apiKey: string) => new OpenAI({ baseURL: `${server.url}/v1`, apiKey, maxRetries: 0 });
  const chat = (apiKey: string, model: string) => sdk(apiKey).chat.completions.create({ model, messages: [{ role: 'user', content: 'hi' }] });

  it('a key with a model list sees and uses only those models; the others are model_not_found', async () => {
    const narrow = sdk('sk-e2e-narrow');
    expect((await narrow.models.list()).data.map((m) => m.id)).toEqual(['m2']);
    expect((await chat('sk-e2e-narrow', 'm2')).choices[0]?.message.content).toBeTruthy();
    const before = upstream.requestCount;
    const denied = await chat('sk-e2e-narrow', 'm1').catch((error: unknown) => error);
    expect(denied).toBeInstanceOf(OpenAI.NotFoundError);
    expect((denied as InstanceType<typeof OpenAI.NotFoundError>).error).toEqual({
      message: "The model 'm1' does not exist or you do not have access to it.",
      type: 'invalid_request_error',
      param: 'model',
      code: 'model_not_found',
    });
    expect(upstream.requestCount).toBe(before);
    await expect(narrow.models.retrieve('m1')).rejects.toBeInstanceOf(OpenAI.NotFoundError);
    const embeddings = await fetch(`${server.url}/v1/embeddings`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: 'Bearer sk-e2e-narrow' },
      body: JSON.stringify({ model: 'm1', input: 'x' }),
    });
    expect(embeddings.status).toBe(404);
    const predict = await fetch(`${server.url}/predict?input_text=x`, { headers: { authorization: 'Bearer sk-e2e-narrow' } });
    // /predict runs the first model (m1).
    expect(predict.status).toBe(404);
    // Per-deployment health: only its models' deployments.
    const health = (await (await fetch(`${server.url}/health/providers`, { headers: { authorization: 'Bearer sk-e2e-narrow' } })).json()) as { details: Record<string, unknown> };
    expect(Object.keys(health.details)).toEqual(['m2#0']);
    // Keys without a list (named or from API_KEYS) see every model.
    expect((await sdk('sk-e2e-wide').models.list()).data.map((m) => m.id)).toEqual(['m1', 'm2']);
    expect((await sdk('sk-e2e-anon').models.retrieve('m1')).id).toBe('m1');
  });

  it("a key's rpm limits that key alone (given as its SHA-256 in the file)", async () => {
    const post = (key: string) =>
      fetch(`${server.url}/v1/chat/completions`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', authorization: `Bearer ${key}` },
        body: JSON.stringify({ model: 'm1', messages: [{ role: 'user', content: 'hi' }] }),
      });
    const statuses: number[] = [];
    let last: Response | undefined;
    for (let i = 0; i < 3; i++) {
      last = await post('sk-e2e-limited');
      statuses.push(last.status);
    }
    // A minute boundary between the requests would reset the window: then only the third counts.
    expect(statuses[0]).toBe(200);
    if (statuses[2] === 429) {
      expect(statuses).toEqual([200, 200, 429]);
      expect(last!.headers.get('retry-after')).toMatch(/^\d+$/);
      expect(((await last!.json()) as { error: { code: string } }).error.code).toBe('rate_limit_exceeded');
    }
    expect(last!.headers.get('x-ratelimit-limit-requests')).toBe('2');
    // No RATE_LIMIT_RPM: the other keys are not limited.
    const wide = await Promise.all([1, 2, 3, 4].map(() => post('sk-e2e-wide')));
    expect(wide.map((r) => r.status)).toEqual([200, 200, 200, 200]);
    expect(wide[0]!.headers.get('x-ratelimit-limit-requests')).toBeNull();
  });

  it('counts requests and tokens per key name in the metrics (never the key)', async () => {
    await chat('sk-e2e-wide', 'm2');
    const text = await (await fetch(`http://127.0.0.1:${metricsPort}/metrics`)).text();
    const value = (series: string) => Number(new RegExp(`^${series.replace(/[{}()[\]|.*+?^$\\/]/g, '\\$&')} (\\S+)$`, 'm').exec(text)?.[1] ?? NaN);
    expect(value('infer_key_requests_total{key="narrow",route="/v1/chat/completions",status="404",instance="' + instanceOf(text) + '"}')).toBe(1);
    expect(value('infer_key_requests_total{key="wide",route="/v1/chat/completions",status="200",instance="' + instanceOf(text) + '"}')).toBeGreaterThanOrEqual(5);
    expect(value('infer_key_tokens_total{key="wide",model="m2",kind="completion",instance="' + instanceOf(text) + '"}')).toBe(4);
    expect(text).not.toContain('sk-e2e');
  });

  it("names the key in the request's log lines, never the key itself", async () => {
    await chat('sk-e2e-wide', 'm1');
    await new Promise((r) => setTimeout(r, 100));
    const lines = server
      .output()
      .split('\n')
      .filter((line) => line.includes('"request completed"'));
    expect(lines.some((line) => line.includes('"key":"wide"'))).toBe(true);
    expect(lines.some((line) => line.includes('"key":"narrow"'))).toBe(true);
    expect(server.output()).not.toContain('sk-e2e-');
  });

  it('stored responses belong to the key name that created them', async () => {
    const created = await sdk('sk-e2e-wide').responses.create({ model: 'm2', input: 'hello' });
    expect((created as unknown as { store: boolean }).store).toBe(true);
    expect((await sdk('sk-e2e-wide').responses.retrieve(created.id)).id).toBe(created.id);
    await expect(sdk('sk-e2e-narrow').responses.retrieve(created.id)).rejects.toBeInstanceOf(OpenAI.NotFoundError);
    await expect(sdk('sk-e2e-anon').responses.retrieve(created.id)).rejects.toBeInstanceOf(OpenAI.NotFoundError);
  });

  it('refuses to start when a key lists a model the models file does not serve, or the file is bad (the key never shown)', async () => {
    const bad = join(dir, 'bad-model.yaml');
    await writeFile(bad, 'keys:\n  - name: typo\n    key: sk-e2e-secret\n    models: [m3]\n');
    await expect(startApiServer({ env: { API_KEYS_FILE: bad }, modelsYaml: fakeModelsYaml(upstream.url, 'm1') })).rejects.toThrow(
      /API_KEYS_FILE: key "typo" lists the model "m3", which the models file does not serve \(m1\)/,
    );
    const broken = join(dir, 'broken.yaml');
    await writeFile(broken, 'keys:\n  - name: broken\n    key: sk-e2e-secret\n    rpm: lots\n');
    const error = (await startApiServer({ env: { API_KEYS_FILE: broken }, modelsYaml: fakeModelsYaml(upstream.url, 'm1') }).then(
      (started) => started.stop(),
      (e: unknown) => e,
    )) as Error;
    expect(error.message).toMatch(/Invalid configuration: API_KEYS_FILE .*keys\[0\] \("broken"\)\.rpm must be integer/);
    expect(error.message).not.toContain('sk-e2e-secret');
  });
});

/** The `instance` label the metrics carry (INSTANCE_ID, host:pid by default). */
function instanceOf(text: string): string {
  return /instance="([^"]+)"/.exec(text)?.[1] ?? '';
}

describe('CACHE_NAMESPACE=api-key with named keys (Redis)', () => {
  let upstream: FakeUpstream;
  let redis: RedisServer;
  let dir: string;

  beforeAll(async () => {
    upstream = await startFakeUpstream({ tokens: 4 });
    redis = await startRedisServer();
    dir = await mkdtemp(join(tmpdir(), 'infer-keys-ns-'));
  });

  afterAll(async () => {
    await upstream?.close();
    await redis?.stop();
  });

  it("a named key's cache entries are its name's: the rotated key hits them, another key does not", async () => {
    const keysFile = join(dir, 'keys.yaml');
    const start = async (teamKey: string) => {
      await writeFile(keysFile, ['keys:', '  - name: team', `    key: ${teamKey}`, '  - name: other', '    key: sk-ns-other'].join('\n'));
      return startApiServer({
        env: { API_KEYS_FILE: keysFile, CACHE_NAMESPACE: 'api-key', REDIS_URL: redis.url },
        modelsYaml: fakeModelsYaml(upstream.url, 'm'),
      });
    };
    const ask = async (server: ApiServer, key: string) => {
      const res = await fetch(`${server.url}/v1/chat/completions`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', authorization: `Bearer ${key}` },
        body: JSON.stringify({ model: 'm', messages: [{ role: 'user', content: 'namespaced by name' }], temperature: 0 }),
      });
      expect(res.status).toBe(200);
      await res.body?.cancel();
      return res.headers.get('x-cache');
    };
    const before = await start('sk-ns-old');
    try {
      expect(await ask(before, 'sk-ns-old')).toBe('MISS');
      expect(await ask(before, 'sk-ns-old')).toBe('HIT');
      // Another key: its own namespace.
      expect(await ask(before, 'sk-ns-other')).toBe('MISS');
    } finally {
      await before.stop();
    }
    // The key of "team" is rotated (same name, new value): its entries are still its own.
    const after = await start('sk-ns-new');
    try {
      expect(await ask(after, 'sk-ns-new')).toBe('HIT');
      expect(upstream.requests.filter((r) => r.path.endsWith('/chat/completions'))).toHaveLength(2);
    } finally {
      await after.stop();
    }
  });
});
