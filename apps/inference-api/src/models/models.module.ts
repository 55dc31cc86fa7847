import { Global, Inject, Logger, Module, type OnApplicationShutdown, type Provider } from '@nestjs/common';
import {
  createDeployments,
  loadModelsFile,
  MODEL_PROVIDER_REGISTRY,
  ModelProviderRegistry,
  ModelProvidersModule,
  ModelRouter,
  type ModelsConfig,
  type ProviderLogger,
} from '@infer/model-providers';
import type { AppConfig } from '../config/app-config.js';
import { APP_CONFIG } from '../config/config.tokens.js';
import { builtinModelsConfig, withBuiltinDir } from './builtin-model.js';
import { ModelCatalog } from './model-catalog.js';
import { MODEL_CATALOG, MODEL_ROUTER } from './models.tokens.js';
import { extraProviderDefinitions } from './provider-definitions.js';

const MODELS_CONFIG = Symbol.for('inference-api:models-config');

function providerLogger(logger: Logger): ProviderLogger {
  return {
    debug: (obj, msg) => logger.debug({ ...obj, msg }),
    info: (obj, msg) => logger.log({ ...obj, msg }),
    warn: (obj, msg) => logger.warn({ ...obj, msg }),
    error: (obj, msg) => logger.error({ ...obj, msg }),
  };
}

const providers: Provider[] = [
  {
    provide: MODELS_CONFIG,
    inject: [APP_CONFIG],
    useFactory: async (config: AppConfig): Promise<ModelsConfig> => {
      const models = config.modelsFile ? await loadModelsFile(config.modelsFile) : builtinModelsConfig(config);
      return withBuiltinDir(models, config);
    },
  },
  {
    provide: MODEL_CATALOG,
    inject: [MODELS_CONFIG],
    useFactory: (models: ModelsConfig) => new ModelCatalog(models),
  },
  {
    provide: MODEL_ROUTER,
    inject: [MODELS_CONFIG, MODEL_PROVIDER_REGISTRY],
    useFactory: async (models: ModelsConfig, registry: ModelProviderRegistry): Promise<ModelRouter> => {
      const logger = new Logger('ModelRouter');
      const deployments = createDeployments(models, registry, { env: process.env, logger: providerLogger(new Logger('ModelProvider')) });
      // Load models / warm pools before the app starts listening.
      await Promise.all(deployments.map((d) => d.provider.init?.()));
      return new ModelRouter(deployments, {
        ...models.router,
        onDeploymentFailure: (deployment, error, willRetry) =>
          logger.warn({ deployment: deployment.id, err: error instanceof Error ? error.message : String(error), willRetry, msg: 'deployment failed' }),
      });
    },
  },
];

/** Loads the models file (or the built-in model), creates and initialises every deployment. */
@Global()
@Module({
  imports: [ModelProvidersModule.forRoot({ definitions: extraProviderDefinitions })],
  providers,
  exports: [MODEL_ROUTER, MODEL_CATALOG],
})
export class ModelsModule implements OnApplicationShutdown {
  constructor(@Inject(MODEL_ROUTER) private readonly router: ModelRouter) {}

  async onApplicationShutdown(): Promise<void> {
    await Promise.allSettled(this.router.deployments().map((d) => d.provider.close()));
  }
}
