/**
 * A fixture for conformance.spec.ts: runs the conformance kit against providers that break the
 * contract on purpose. It only runs when CONFORMANCE_BROKEN_FIXTURE=1 (conformance.spec.ts starts
 * it in a child vitest and checks which cases fail); otherwise it is skipped.
 */
import { it } from 'vitest';
import { runModelProviderConformance } from './conformance.js';
import { ScriptedProvider } from './scripted-provider.js';
import type { ScriptedProviderBug, ScriptedProviderOptions } from './scripted-provider.js';

export const BROKEN_FIXTURE_VARIANTS: Readonly<Record<string, ScriptedProviderOptions>> = {
  correct: {},
  'chat-only': { capabilities: { completion: false, streaming: false } },
  'ignores-abort': { bugs: ['ignores-abort'] },
  'no-finish': { bugs: ['no-finish'] },
  'ignores-max-tokens': { bugs: ['ignores-max-tokens'] },
  'leaks-on-abort': { bugs: ['leaks-on-abort'], slots: 8 },
  'stream-mismatch': { bugs: ['stream-mismatch'] },
  'wrong-not-supported': { bugs: ['wrong-not-supported'], capabilities: { completion: false } },
  'tool-call-without-id': { bugs: ['tool-call-without-id'] },
  'embeddings-one-short': { bugs: ['embeddings-one-short'] },
  'logprobs-dropped-in-stream': { bugs: ['logprobs-dropped-in-stream'] },
} satisfies Record<string, ScriptedProviderOptions & { bugs?: readonly ScriptedProviderBug[] }>;

if (process.env['CONFORMANCE_BROKEN_FIXTURE'] === '1') {
  for (const [variant, options] of Object.entries(BROKEN_FIXTURE_VARIANTS)) {
    runModelProviderConformance({
      name: variant,
      create: () => new ScriptedProvider({ slots: 4, ...options }),
      deterministic: true,
      timeoutMs: 3_000,
      abortTimeoutMs: 500,
      capacityProbe: 10,
    });
  }
} else {
  it.skip('runs only as a fixture of conformance.spec.ts', () => undefined);
}
