import { type DynamicModule, Module } from '@nestjs/common';
import { builtinProviderDefinitions } from './builtin-providers.js';
import type { AnyModelProviderDefinition } from './provider-definition.js';
import { ModelProviderRegistry } from './provider-registry.js';
import { MODEL_PROVIDER_REGISTRY } from './registry.tokens.js';

export interface ModelProvidersModuleOptions {
  /** Provider kinds of your own, added to the built-in ones. */
  readonly definitions?: readonly AnyModelProviderDefinition[];
}

/** Exposes the provider registry (built-in kinds plus yours) under MODEL_PROVIDER_REGISTRY. */
@Module({})
export class ModelProvidersModule {
  static forRoot(options: ModelProvidersModuleOptions = {}): DynamicModule {
    return {
      module: ModelProvidersModule,
      global: true,
      providers: [
        {
          provide: MODEL_PROVIDER_REGISTRY,
          useFactory: () => new ModelProviderRegistry([...builtinProviderDefinitions, ...(options.definitions ?? [])]),
        },
      ],
      exports: [MODEL_PROVIDER_REGISTRY],
    };
  }
}
