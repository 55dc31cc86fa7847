import {
  builtinProviderDefinitions,
  createDeployments,
  loadModelsFile,
  ModelProviderError,
  ModelProviderRegistry,
  type ModelsConfig,
  ProviderConfigError,
  silentLogger,
} from '@infer/model-providers';
import type { ApiKeyRecord } from '../common/api-keys.js';
import { builtinModelsConfig, withBuiltinDir } from '../models/builtin-model.js';
import { ModelCatalog } from '../models/model-catalog.js';
import { extraProviderDefinitions } from '../models/provider-definitions.js';
import { type AppConfig, ConfigValidationError } from './app-config.js';

/** What a configuration check found (for the `--check-config` line). */
export interface PreflightSummary {
  readonly models: number;
  readonly deployments: number;
}

/**
 * Checks what the app would only find out while booting, without loading any model or opening a
 * connection: the models file (readable, well-formed, every deployment's options valid for its
 * provider, as the provider itself checks them), the model lists of API_KEYS_FILE against it. Run by main.ts before Nest starts
 * (a bad file is one line on stderr, not a stack trace) and by `main.js --check-config` (what
 * ecosystem.config.js runs before PM2 starts or reloads workers). Throws ConfigValidationError.
 */
export async function preflight(config: AppConfig): Promise<PreflightSummary> {
  let models: ModelsConfig;
  try {
    models = withBuiltinDir(config.modelsFile ? await loadModelsFile(config.modelsFile) : builtinModelsConfig(config), config);
    // Each deployment's provider is made (its options checked as the app checks them: the schema, then
    // the provider's own rules, e.g. an apiKeyEnv that is not set) and closed at once: nothing is loaded
    // or connected before init().
    const registry = new ModelProviderRegistry([...builtinProviderDefinitions, ...extraProviderDefinitions]);
    const deployments = createDeployments(models, registry, { env: process.env, logger: silentLogger });
    await Promise.allSettled(deployments.map((deployment) => deployment.provider.close()));
  } catch (error) {
    if (error instanceof ProviderConfigError || error instanceof ModelProviderError) throw new ConfigValidationError(`Invalid configuration: ${error.message}`);
    throw error;
  }
  const catalog = new ModelCatalog(models);
  withModelNames(config.apiKeys, catalog);
  return { models: models.models.length, deployments: models.models.reduce((n, model) => n + model.deployments.length, 0) };
}

/**
 * The keys with their model lists checked against the models file and stated as model names (an
 * alias in a list stands for its model). A listed model the file does not serve stops the boot.
 */
export function withModelNames(keys: readonly ApiKeyRecord[], catalog: ModelCatalog): ApiKeyRecord[] {
  return keys.map((key) => {
    if (key.models === undefined) return key;
    const models = new Set<string>();
    for (const model of key.models) {
      const name = catalog.resolve(model);
      if (name === undefined) {
        throw new ConfigValidationError(
          `Invalid configuration: API_KEYS_FILE: key "${key.name ?? '?'}" lists the model "${model}", which the models file does not serve (${catalog.list.data.map((m) => m.id).join(', ')})`,
        );
      }
      models.add(name);
    }
    return { ...key, models };
  });
}
