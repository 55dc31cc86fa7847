/** DI tokens of the models module. */
export const MODEL_ROUTER = Symbol.for('inference-api:model-router');
export const MODEL_CATALOG = Symbol.for('inference-api:model-catalog');
