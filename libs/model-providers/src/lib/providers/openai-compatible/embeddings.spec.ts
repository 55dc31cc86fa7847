import { once } from 'node:events';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { ModelProviderError } from '../../contract/errors.js';
import { captureError } from '../../testing/conformance.js';
import { fakeEmbedding, startFakeUpstream } from '../../testing/fake-upstream.js';
import type { FakeUpstream } from '../../testing/fake-upstream.js';
import { decodeBase64Floats, encodeBase64Floats } from './embeddings.js';
import { OpenAICompatibleProvider } from './openai-compatible.provider.js';

let upstream: FakeUpstream;
const providers: OpenAICompatibleProvider[] = [];

function provider(baseUrl = upstream.url, supportsEmbeddings?: boolean): OpenAICompatibleProvider {
  const p = new OpenAICompatibleProvider({ baseUrl, model: 'embedder', ...(supportsEmbeddings === undefined ? {} : { supportsEmbeddings }) });
  providers.push(p);
  return p;
}

/** An upstream that answers every request with `body` (JSON) and `status`. */
async function rawUpstream(body: unknown, status = 200): Promise<{ url: string; close: () => void }> {
  const server = createServer((req, res) => {
    req.resume();
    res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(body));
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/v1`, close: () => server.close() };
}

beforeAll(async () => {
  upstream = await startFakeUpstream();
});
afterEach(async () => {
  await Promise.all(providers.splice(0).map((p) => p.close()));
  upstream.reset();
});
afterAll(() => upstream.close());

describe('OpenAICompatibleProvider: embeddings', () => {
  it('POSTs {model, input, encoding_format: float, dimensions, extra} to /embeddings and returns the vectors in order', async () => {
    const result = await provider().embed({ input: ['a', 'b c'], dimensions: 5, extra: { user: 'u1' } });
    expect(upstream.requests.at(-1)).toMatchObject({
      method: 'POST',
      path: '/v1/embeddings',
      body: { model: 'embedder', input: ['a', 'b c'], encoding_format: 'float', dimensions: 5, user: 'u1' },
    });
    expect(result.embeddings).toEqual([fakeEmbedding('a', 5), fakeEmbedding('b c', 5)]);
    expect(result.usage.promptTokens).toBe(2);
  });

  it('reads base64 vectors, puts data in index order, and estimates usage when the upstream reports none', async () => {
    const raw = await rawUpstream({
      data: [
        { index: 1, embedding: encodeBase64Floats([0.5, -0.25]) },
        { index: 0, embedding: [1, 0] },
      ],
    });
    try {
      const result = await provider(raw.url).embed({ input: ['first', 'second!!'] });
      expect(result.embeddings).toEqual([
        [1, 0],
        [0.5, -0.25],
      ]);
      expect(result.usage.promptTokens).toBe(Math.ceil(13 / 4));
    } finally {
      raw.close();
    }
  });

  it('rejects answers that do not fit the inputs as malformed upstream answers', async () => {
    const bodies = [
      {},
      { data: [{ index: 0, embedding: [1, 2] }] },
      { data: [{ index: 0, embedding: [1, 2] }, { index: 0, embedding: [1, 2] }] },
      { data: [{ index: 0, embedding: [1, 2] }, { index: 1, embedding: [1] }] },
      { data: [{ index: 0, embedding: [1, 2] }, { index: 1, embedding: ['x', 2] }] },
      { data: [{ index: 0, embedding: [] }, { index: 1, embedding: [] }] },
    ];
    for (const body of bodies) {
      const raw = await rawUpstream(body);
      try {
        const error = await captureError(() => provider(raw.url).embed({ input: ['a', 'b'] }));
        expect(error, JSON.stringify(body)).toBeInstanceOf(ModelProviderError);
        expect((error as ModelProviderError).code, JSON.stringify(body)).toBe('upstream_error');
      } finally {
        raw.close();
      }
    }
  });

  it('maps upstream errors like other calls, and supportsEmbeddings: false is not_supported without a request', async () => {
    const raw = await rawUpstream({ error: { message: 'This model does not support embeddings', type: 'invalid_request_error' } }, 400);
    try {
      const error = await captureError(() => provider(raw.url).embed({ input: ['a'] }));
      expect(error).toMatchObject({ code: 'invalid_request', message: expect.stringMatching(/does not support embeddings/) });
    } finally {
      raw.close();
    }
    const off = provider(upstream.url, false);
    expect(off.capabilities.embeddings).toBe(false);
    expect(await captureError(() => off.embed({ input: ['a'] }))).toMatchObject({ code: 'not_supported', isRetryable: false });
    expect(upstream.requestCount).toBe(0);
  });

  it('base64 helpers round-trip float32 values', () => {
    const values = [0, 1, -1, 0.1, 3.4e38].map(Math.fround);
    expect(decodeBase64Floats(encodeBase64Floats(values))).toEqual(values);
    expect(decodeBase64Floats('AAA=')).toBeUndefined();
  });
});
