import OpenAI from 'openai';
import { type FakeUpstream, startFakeUpstream } from '@infer/model-providers/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type ApiServer, startApiServer } from '../support/api-server.js';
import { apiError } from '../support/openai-errors.js';

/** Model aliases (models file `aliases`): an application written for OpenAI's model names runs unchanged. */
describe('model aliases', () => {
  let upstream: FakeUpstream;
  let server: ApiServer;
  let client: OpenAI;

  beforeAll(async () => {
    upstream = await startFakeUpstream({ tokens: 3 });
    server = await startApiServer({
      modelsYaml: `models:\n  - name: local-chat\n    aliases: [gpt-4o-mini, gpt-4o]\n    deployments:\n      - provider: openai-compatible\n        baseUrl: ${upstream.url}\n        model: fake\n`,
    });
    client = new OpenAI({ baseURL: `${server.url}/v1`, apiKey: 'k', maxRetries: 0 });
  });

  afterAll(async () => {
    await server?.stop();
    await upstream?.close();
  });

  it('serves a request for an alias as its model, with the same cache entries; lists and describes the model', async () => {
    const viaAlias = await client.chat.completions.create({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'alias test' }], temperature: 0 }).withResponse();
    expect(viaAlias.data.model).toBe('local-chat');
    expect(viaAlias.response.headers.get('x-cache')).toBe('MISS');
    const direct = await client.chat.completions.create({ model: 'local-chat', messages: [{ role: 'user', content: 'alias test' }], temperature: 0 }).withResponse();
    expect(direct.response.headers.get('x-cache')).toBe('HIT');
    expect(direct.data.choices[0]?.message.content).toBe(viaAlias.data.choices[0]?.message.content);
    const responses = await client.responses.create({ model: 'gpt-4o', input: 'alias test too' });
    expect(responses.model).toBe('local-chat');
    expect((await client.models.list()).data.map((m) => m.id)).toEqual(['local-chat']);
    expect((await client.models.retrieve('gpt-4o')).id).toBe('local-chat');
    expect((await apiError(client.chat.completions.create({ model: 'gpt-5', messages: [{ role: 'user', content: 'x' }] }), OpenAI.NotFoundError)).code).toBe(
      'model_not_found',
    );
  });
});
