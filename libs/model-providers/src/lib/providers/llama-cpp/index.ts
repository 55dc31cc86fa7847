import { defineProvider } from '../../registry/provider-definition.js';
import { LlamaCppProvider, LLAMA_CPP_PROVIDER_KIND } from './llama-cpp.provider.js';
import { llamaCppOptionsSchema, type LlamaCppProviderOptions } from './llama-cpp.options.js';

export { BUILTIN_LLAMA_CPP_MODELS, createLlamaCppProvider, LLAMA_CPP_PROVIDER_KIND, LlamaCppProvider } from './llama-cpp.provider.js';
export {
  LLAMA_CPP_CHAT_WRAPPERS,
  LLAMA_CPP_DEFAULTS,
  llamaCppOptionsSchema,
  type LlamaCppChatWrapperName,
  type LlamaCppProviderOptions,
} from './llama-cpp.options.js';

/** The `llama-cpp` provider kind: a GGUF model run in-process by node-llama-cpp. */
export const llamaCppProviderDefinition = defineProvider<LlamaCppProviderOptions>({
  kind: LLAMA_CPP_PROVIDER_KIND,
  description: 'A GGUF model run in-process by llama.cpp (node-llama-cpp), CPU by default; builtin:tiny-llama needs no download.',
  optionsSchema: llamaCppOptionsSchema,
  create: (options, context) => new LlamaCppProvider(options, context),
});
