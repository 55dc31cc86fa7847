import { llamaCppProviderDefinition } from '../providers/llama-cpp/index.js';
import { openAICompatibleProviderDefinition } from '../providers/openai-compatible/index.js';
import type { AnyModelProviderDefinition } from './provider-definition.js';

/** Every built-in provider kind. Adding a provider is one line here (see README "Add a provider"). */
export const builtinProviderDefinitions: readonly AnyModelProviderDefinition[] = [
  openAICompatibleProviderDefinition,
  llamaCppProviderDefinition,
];
