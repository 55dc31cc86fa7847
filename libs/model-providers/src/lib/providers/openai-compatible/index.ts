import { defineProvider } from '../../registry/provider-definition.js';
import { OPENAI_COMPATIBLE_KIND, openAICompatibleOptionsSchema } from './openai-compatible.options.js';
import type { OpenAICompatibleProviderOptions } from './openai-compatible.options.js';
import { OpenAICompatibleProvider } from './openai-compatible.provider.js';

export { OPENAI_COMPATIBLE_KIND, openAICompatibleOptionsSchema, resolveOpenAICompatibleOptions } from './openai-compatible.options.js';
export type { OpenAICompatibleProviderOptions, ResolvedOpenAICompatibleOptions } from './openai-compatible.options.js';
export { OpenAICompatibleProvider, createOpenAICompatibleProvider } from './openai-compatible.provider.js';
export type { OpenAICompatibleProviderContext } from './openai-compatible.provider.js';
export { SseParser } from './sse-parser.js';
export { decodeBase64Floats, encodeBase64Floats } from './embeddings.js';
export type { SseEvent } from './sse-parser.js';

/** The `openai-compatible` provider kind: any server speaking the OpenAI HTTP API. */
export const openAICompatibleProviderDefinition = defineProvider<OpenAICompatibleProviderOptions>({
  kind: OPENAI_COMPATIBLE_KIND,
  description: 'Any OpenAI-compatible HTTP upstream (vLLM, Ollama, llama.cpp server, TGI, OpenAI, a model node)',
  optionsSchema: openAICompatibleOptionsSchema,
  create: (options, context) => new OpenAICompatibleProvider(options, { env: context.env, logger: context.logger }),
});
