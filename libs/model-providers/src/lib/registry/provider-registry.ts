import { Ajv, type ValidateFunction } from 'ajv';
import { ProviderConfigError } from '../contract/errors.js';
import type { ModelProvider } from '../contract/model-provider.js';
import type { AnyModelProviderDefinition, ProviderContext } from './provider-definition.js';

/**
 * The one place provider kinds are known: a map from `kind` to its definition.
 * Built-in kinds are listed in ./builtin-providers.ts; apps can add their own with `register`.
 */
export class ModelProviderRegistry {
  private readonly definitions = new Map<string, AnyModelProviderDefinition>();
  private readonly validators = new Map<string, ValidateFunction>();
  private readonly ajv = new Ajv({ allErrors: true, useDefaults: true, strict: false });

  constructor(definitions: Iterable<AnyModelProviderDefinition> = []) {
    for (const definition of definitions) this.register(definition);
  }

  register(definition: AnyModelProviderDefinition): this {
    if (this.definitions.has(definition.kind)) {
      throw new ProviderConfigError(`Provider kind "${definition.kind}" is already registered`);
    }
    this.definitions.set(definition.kind, definition);
    this.validators.set(definition.kind, this.ajv.compile({ $async: false, ...definition.optionsSchema }));
    return this;
  }

  kinds(): string[] {
    return [...this.definitions.keys()];
  }

  get(kind: string): AnyModelProviderDefinition | undefined {
    return this.definitions.get(kind);
  }

  /**
   * Validates `options` against the kind's schema (applying its defaults) and creates the provider.
   * `where` names the options in error messages, e.g. `models[0].deployments[1]`.
   */
  create(kind: string, options: Record<string, unknown>, context: ProviderContext, where = 'deployment'): ModelProvider {
    const definition = this.definitions.get(kind);
    if (!definition) throw this.unknownKind(kind, where);
    return definition.create(this.validate(kind, options, where), context);
  }

  /** `options` checked against the kind's schema: a copy with the defaults applied; throws ProviderConfigError. */
  private validate(kind: string, options: Record<string, unknown>, where: string): Record<string, unknown> {
    const validate = this.validators.get(kind);
    if (!validate) throw this.unknownKind(kind, where);
    const copy = structuredClone(options);
    if (!validate(copy)) {
      const details = (validate.errors ?? [])
        .map((e) => `${where}${e.instancePath.replaceAll('/', '.')} ${e.message ?? 'is invalid'}${formatParams(e.params)}`)
        .join('; ');
      throw new ProviderConfigError(`Invalid options for provider "${kind}": ${details}`);
    }
    return copy;
  }

  private unknownKind(kind: string, where: string): ProviderConfigError {
    return new ProviderConfigError(`${where}.provider: unknown provider kind "${kind}" (known: ${this.kinds().join(', ') || 'none'})`);
  }
}

function formatParams(params: Record<string, unknown>): string {
  if (typeof params['additionalProperty'] === 'string') return ` ("${params['additionalProperty']}")`;
  if (Array.isArray(params['allowedValues'])) return ` (${params['allowedValues'].join(', ')})`;
  return '';
}
