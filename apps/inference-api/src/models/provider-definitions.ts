import type { AnyModelProviderDefinition } from '@infer/model-providers';

/**
 * Provider kinds from outside `@infer/model-providers` (another team's package), added to the
 * built-in ones. The one list: the app's registry (ModelsModule) and the configuration check
 * (config/preflight.ts, `main.js --check-config`) both use it, so a models file naming your kind
 * passes the check exactly when the app can serve it.
 */
export const extraProviderDefinitions: readonly AnyModelProviderDefinition[] = [];
