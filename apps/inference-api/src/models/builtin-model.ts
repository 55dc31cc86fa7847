import { join, resolve } from 'node:path';
import type { ModelsConfig } from '@infer/model-providers';
import { ensureTinyLlamaGguf, TINY_LLAMA_GGUF_FILE_NAME } from '@infer/model-providers';
import type { AppConfig } from '../config/app-config.js';

/** The public id of the built-in model served when no MODELS_FILE is given. */
export const BUILTIN_MODEL_NAME = 'tiny-llama';
/** In a models file, `modelPath: builtin:tiny-llama` points a llama-cpp deployment at the built-in GGUF. */
export const BUILTIN_MODEL_REF = `builtin:${BUILTIN_MODEL_NAME}`;

/** The embedded default: one model, in-process llama.cpp, on a GGUF the project writes itself. */
export function builtinModelsConfig(config: AppConfig): ModelsConfig {
  return {
    baseDir: process.cwd(),
    models: [
      {
        name: BUILTIN_MODEL_NAME,
        ownedBy: 'llama-cpp',
        deployments: [{ provider: 'llama-cpp', modelPath: BUILTIN_MODEL_REF, threads: config.defaultModelThreads }],
      },
    ],
  };
}

/**
 * Replaces `builtin:tiny-llama` model paths with the real file, writing it first if missing
 * (atomically, so PM2 workers starting together are safe).
 */
export async function resolveBuiltinModelPaths(models: ModelsConfig, config: AppConfig): Promise<ModelsConfig> {
  let builtinPath: string | undefined;
  const resolved = [];
  for (const model of models.models) {
    const deployments = [];
    for (const deployment of model.deployments) {
      if (deployment['modelPath'] === BUILTIN_MODEL_REF) {
        builtinPath ??= await ensureTinyLlamaGguf(join(resolve(config.modelsDir), TINY_LLAMA_GGUF_FILE_NAME));
        deployments.push({ ...deployment, modelPath: builtinPath });
      } else {
        deployments.push(deployment);
      }
    }
    resolved.push({ ...model, deployments });
  }
  return { ...models, models: resolved };
}
