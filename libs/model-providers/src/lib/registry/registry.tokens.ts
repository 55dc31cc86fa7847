/** Nest DI tokens exposed by ModelProvidersModule. */
export const MODEL_PROVIDER_REGISTRY = Symbol.for('@infer/model-providers:registry');
