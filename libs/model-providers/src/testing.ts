/**
 * `@infer/model-providers/testing`: the kit a team uses to prove its provider keeps the contract.
 *
 * - runModelProviderConformance: the vitest conformance suite (a provider's conformance spec is 3 lines),
 *   with collectStream and the expect* helpers it is built on.
 * - startFakeUpstream: a fast, deterministic, instrumented fake OpenAI-compatible server
 *   (also the benchmark upstream; CLI: dist/lib/testing/fake-upstream.cli.js).
 * - ScriptedProvider: an in-memory deterministic provider (no I/O) for router and API unit tests.
 * - startRawUpstream / startJsonUpstream: a server answering fixed bytes (odd upstream answers).
 *
 * This entry point imports `vitest`: use it from test code only.
 */
export {
  MODEL_PROVIDER_CONFORMANCE_CASES,
  captureError,
  collectStream,
  expectProviderError,
  expectValidGenerationResult,
  expectValidLogprobs,
  expectValidStream,
  expectValidUsage,
  runModelProviderConformance,
  withinMs,
} from './lib/testing/conformance.js';
export type {
  CollectedStream,
  ModelProviderConformanceCase,
  ModelProviderConformanceOptions,
} from './lib/testing/conformance.js';
export {
  FAKE_REFUSAL,
  fakeReplyHash,
  fakeReplyLogprobs,
  fakeReplyText,
  fakeReplyTokens,
  fakeTokenLogprob,
  startFakeUpstream,
} from './lib/testing/fake-upstream.js';
export type {
  FakeUpstream,
  FakeUpstreamAbortEvent,
  FakeUpstreamStats,
  FakeUpstreamFailure,
  FakeUpstreamOptions,
  FakeUpstreamRuntimeOptions,
  RecordedRequest,
} from './lib/testing/fake-upstream.js';
export { startJsonUpstream, startRawUpstream } from './lib/testing/raw-upstream.js';
export type { RawUpstream, RawUpstreamOptions } from './lib/testing/raw-upstream.js';
export { ScriptedProvider } from './lib/testing/scripted-provider.js';
export type { ScriptedProviderBug, ScriptedProviderOptions } from './lib/testing/scripted-provider.js';
