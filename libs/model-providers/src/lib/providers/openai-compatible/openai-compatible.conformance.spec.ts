import { afterAll, beforeAll } from 'vitest';
import { runModelProviderConformance } from '../../testing/conformance.js';
import { startFakeUpstream } from '../../testing/fake-upstream.js';
import type { FakeUpstream } from '../../testing/fake-upstream.js';
import { OpenAICompatibleProvider } from './openai-compatible.provider.js';

let upstream: FakeUpstream;
beforeAll(async () => {
  upstream = await startFakeUpstream({ tokens: 24, interTokenDelayMs: 1 });
});
afterAll(() => upstream.close());

runModelProviderConformance({
  name: 'openai-compatible (fake upstream)',
  // A pool smaller than capacityProbe: a leaked connection would make the follow-up calls hang.
  create: () => new OpenAICompatibleProvider({ baseUrl: upstream.url, model: 'fake-model', connections: 4 }),
  deterministic: true,
  capacityProbe: 12,
});

runModelProviderConformance({
  name: 'openai-compatible (chat-only upstream, everything written at once)',
  create: () =>
    new OpenAICompatibleProvider({ baseUrl: upstream.url, model: 'fake-model', connections: 2, supportsCompletions: false }),
  deterministic: true,
  capacityProbe: 6,
});
