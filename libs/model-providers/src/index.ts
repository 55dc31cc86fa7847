// Public API of @infer/model-providers. Everything a consumer or a provider author needs is
// exported here; the conformance kit and the fake upstream live in '@infer/model-providers/testing'.
export * from './lib/contract/model-provider.js';
export * from './lib/contract/errors.js';
export * from './lib/contract/tool-call-parts.js';
export * from './lib/registry/provider-definition.js';
export * from './lib/registry/provider-registry.js';
export * from './lib/registry/registry.tokens.js';
export * from './lib/registry/builtin-providers.js';
export * from './lib/registry/model-providers.module.js';
export * from './lib/router/model-router.js';
export * from './lib/models/models-file.js';
export * from './lib/providers/openai-compatible/index.js';
export * from './lib/providers/llama-cpp/index.js';
export * from './lib/gguf/index.js';
