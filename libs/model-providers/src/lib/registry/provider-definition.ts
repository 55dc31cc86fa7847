import type { ModelProvider } from '../contract/model-provider.js';

/** A JSON Schema (draft-07 subset, checked with Ajv) describing a provider's deployment options. */
export type OptionsSchema = Readonly<Record<string, unknown>>;

/** What a factory gets besides its own options. */
export interface ProviderContext {
  /** The public model name clients use (the models-file `name`). */
  readonly modelName: string;
  /** Environment to read secrets from (`apiKeyEnv`), injectable for tests. */
  readonly env: Readonly<Record<string, string | undefined>>;
  /** Directory relative paths in options (e.g. a GGUF path) are resolved against: the models file's folder. */
  readonly baseDir: string;
  /** Structured logger; providers log through it, never with console. */
  readonly logger: ProviderLogger;
}

export interface ProviderLogger {
  debug(obj: object, msg?: string): void;
  info(obj: object, msg?: string): void;
  warn(obj: object, msg?: string): void;
  error(obj: object, msg?: string): void;
}

/**
 * One entry of the registry: everything the platform needs to know about a provider kind.
 * `TOptions` is what `optionsSchema` accepts (validated before `create` is called).
 */
export interface ModelProviderDefinition<TOptions = Record<string, unknown>> {
  /** The `provider:` value in the models file. */
  readonly kind: string;
  readonly description: string;
  /** Options of one deployment, without the common keys (`provider`, `weight`, `priority`). */
  readonly optionsSchema: OptionsSchema;
  create(options: TOptions, context: ProviderContext): ModelProvider;
}

// Definitions are stored type-erased in the registry map; `defineProvider` keeps authors typed.
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export type AnyModelProviderDefinition = ModelProviderDefinition<any>;

export function defineProvider<TOptions>(definition: ModelProviderDefinition<TOptions>): ModelProviderDefinition<TOptions> {
  return definition;
}

export const silentLogger: ProviderLogger = {
  debug: () => undefined,
  info: () => undefined,
  warn: () => undefined,
  error: () => undefined,
};
