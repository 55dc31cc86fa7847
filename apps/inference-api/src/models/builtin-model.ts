import { resolve } from 'node:path';
import type { ModelsConfig } from '@infer/model-providers';
import type { AppConfig } from '../config/app-config.js';

/** The public id of the built-in model served when no MODELS_FILE is given. */
export const BUILTIN_MODEL_NAME = 'tiny-llama';

/**
 * The embedded default: one model, in-process llama.cpp, on the GGUF the project writes itself
 * (`modelPath: builtin:tiny-llama`, written into MODELS_DIR on first use by the llama-cpp provider).
 */
export function builtinModelsConfig(config: AppConfig): ModelsConfig {
  return {
    baseDir: process.cwd(),
    models: [
      {
        name: BUILTIN_MODEL_NAME,
        ownedBy: 'llama-cpp',
        deployments: [{ provider: 'llama-cpp', modelPath: `builtin:${BUILTIN_MODEL_NAME}`, threads: config.defaultModelThreads }],
      },
    ],
  };
}

/** `builtin:` GGUFs of llama-cpp deployments go to MODELS_DIR unless the deployment sets `builtinDir`. */
export function withBuiltinDir(models: ModelsConfig, config: AppConfig): ModelsConfig {
  const builtinDir = resolve(config.modelsDir);
  return {
    ...models,
    models: models.models.map((model) => ({
      ...model,
      deployments: model.deployments.map((d) =>
        d.provider === 'llama-cpp' && typeof d['modelPath'] === 'string' && d['modelPath'].startsWith('builtin:') && d['builtinDir'] === undefined
          ? { ...d, builtinDir }
          : d,
      ),
    })),
  };
}
