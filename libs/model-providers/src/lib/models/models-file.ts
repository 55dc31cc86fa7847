import { readFile } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';
import { Ajv } from 'ajv';
import { parse as parseYaml } from 'yaml';
import { ProviderConfigError } from '../contract/errors.js';
import type { ProviderContext } from '../registry/provider-definition.js';
import type { ModelProviderRegistry } from '../registry/provider-registry.js';
import type { Deployment } from '../router/model-router.js';

/** One deployment as written in the models file: a provider kind, a weight, a priority, and the kind's options. */
export interface DeploymentConfig {
  readonly provider: string;
  readonly weight?: number;
  /** Fallback tier, lower is preferred (default 0): see `Deployment.priority`. */
  readonly priority?: number;
  readonly [option: string]: unknown;
}

export interface ModelConfig {
  /** The public model id clients send as `model`. */
  readonly name: string;
  /**
   * Other names clients may send for it (e.g. `gpt-4o-mini`, so an application written for OpenAI
   * needs no change): requests with one are served as `name` (its answers say `name`).
   */
  readonly aliases?: readonly string[];
  readonly ownedBy?: string;
  /** Response-cache TTL for this model in seconds (overrides the global default). */
  readonly cacheTtlSeconds?: number;
  readonly deployments: readonly DeploymentConfig[];
}

export interface RouterConfig {
  readonly cooldownMs?: number;
  readonly maxAttempts?: number;
}

export interface ModelsConfig {
  readonly models: readonly ModelConfig[];
  readonly router?: RouterConfig;
  /** Folder that relative paths in options are resolved against (the models file's folder). */
  readonly baseDir: string;
}

const modelsFileSchema = {
  type: 'object',
  required: ['models'],
  additionalProperties: false,
  properties: {
    models: {
      type: 'array',
      minItems: 1,
      items: {
        type: 'object',
        required: ['name', 'deployments'],
        additionalProperties: false,
        properties: {
          name: { type: 'string', minLength: 1, pattern: '^[^\\s]+$' },
          aliases: { type: 'array', uniqueItems: true, items: { type: 'string', minLength: 1, pattern: '^[^\\s]+$' } },
          ownedBy: { type: 'string' },
          cacheTtlSeconds: { type: 'number', minimum: 0 },
          deployments: {
            type: 'array',
            minItems: 1,
            items: {
              type: 'object',
              required: ['provider'],
              properties: {
                provider: { type: 'string', minLength: 1 },
                weight: { type: 'number', exclusiveMinimum: 0 },
                priority: { type: 'integer', minimum: 0 },
              },
            },
          },
        },
      },
    },
    router: {
      type: 'object',
      additionalProperties: false,
      properties: {
        cooldownMs: { type: 'integer', minimum: 0 },
        maxAttempts: { type: 'integer', minimum: 1 },
      },
    },
  },
} as const;

const validateModelsFile = new Ajv({ allErrors: true, strict: false }).compile(modelsFileSchema);

/** Parses and validates a models file's text. `source` names it in error messages. */
export function parseModelsConfig(text: string, source: string, baseDir: string): ModelsConfig {
  let raw: unknown;
  try {
    raw = parseYaml(text);
  } catch (error) {
    throw new ProviderConfigError(`${source}: not valid YAML: ${(error as Error).message}`);
  }
  if (!validateModelsFile(raw)) {
    const details = (validateModelsFile.errors ?? [])
      .map((e) => `${toPath(e.instancePath)} ${e.message ?? 'is invalid'}`)
      .join('; ');
    throw new ProviderConfigError(`${source}: ${details}`);
  }
  const config = raw as unknown as Omit<ModelsConfig, 'baseDir'>;
  const seen = new Set<string>();
  for (const model of config.models) {
    if (seen.has(model.name)) throw new ProviderConfigError(`${source}: model "${model.name}" is listed twice`);
    seen.add(model.name);
  }
  // An alias names exactly one model, and is no model's name.
  const aliases = new Map<string, string>();
  for (const model of config.models) {
    for (const alias of model.aliases ?? []) {
      if (seen.has(alias)) throw new ProviderConfigError(`${source}: the alias "${alias}" of model "${model.name}" is a model's name`);
      const other = aliases.get(alias);
      if (other !== undefined) throw new ProviderConfigError(`${source}: the alias "${alias}" is given to both "${other}" and "${model.name}"`);
      aliases.set(alias, model.name);
    }
  }
  return { ...config, baseDir };
}

export async function loadModelsFile(path: string): Promise<ModelsConfig> {
  const absolute = resolve(path);
  let text: string;
  try {
    text = await readFile(absolute, 'utf8');
  } catch (error) {
    throw new ProviderConfigError(`MODELS_FILE ${absolute}: cannot be read (${(error as NodeJS.ErrnoException).code ?? String(error)})`);
  }
  return parseModelsConfig(text, absolute, dirname(absolute));
}

/** Creates one provider per deployment through the registry. Options errors name their path. */
export function createDeployments(
  config: ModelsConfig,
  registry: ModelProviderRegistry,
  context: Omit<ProviderContext, 'modelName' | 'baseDir'>,
): Deployment[] {
  return config.models.flatMap((model, m) =>
    model.deployments.map((deployment, d) => {
      const { provider: kind, weight, priority, ...options } = deployment;
      const provider = registry.create(
        kind,
        options,
        { ...context, modelName: model.name, baseDir: config.baseDir },
        `models[${m}].deployments[${d}]`,
      );
      return { id: `${model.name}#${d}`, modelName: model.name, provider, weight: weight ?? 1, priority: priority ?? 0 };
    }),
  );
}

function toPath(instancePath: string): string {
  return instancePath === '' ? '(root)' : instancePath.slice(1).replace(/\/(\d+)/g, '[$1]').replaceAll('/', '.');
}
