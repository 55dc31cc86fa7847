/**
 * OpenAPI schemas of the health routes: terminus's response shape
 * (`{ status, info, error, details }`), with examples from this app.
 */

const indicatorMap = (example: Record<string, unknown>) => ({
  type: 'object',
  description: 'One entry per check (Redis, each model deployment by its router id, the process).',
  example,
  additionalProperties: {
    type: 'object',
    required: ['status'],
    properties: {
      status: { type: 'string', enum: ['up', 'degraded', 'down'] },
      responseTime: { type: 'number', description: 'How long the check took, ms' },
      message: { type: 'string' },
    },
    additionalProperties: true,
  },
});

const READY_EXAMPLE = {
  redis: { status: 'up', target: 'redis://127.0.0.1:6379', required: true, responseTime: 1 },
  'my-model#0': {
    status: 'up',
    model: 'my-model',
    kind: 'openai-compatible',
    label: 'openai-compatible(http://10.0.0.5:8000/v1, llama3)',
    healthy: true,
    responseTime: 3,
  },
};

const NOT_READY_EXAMPLE = {
  lifecycle: { status: 'down', phase: 'draining', reason: 'SIGTERM', shuttingDownForMs: 420, deadlineInMs: 9580 },
};

const PROVIDERS_EXAMPLE = {
  'my-model#0': {
    ...READY_EXAMPLE['my-model#0'],
    router: { weight: 1, priority: 0, outstanding: 2, coolingDownForMs: 0, consecutiveFailures: 0 },
  },
  'my-model#1': {
    status: 'degraded',
    model: 'my-model',
    kind: 'openai-compatible',
    label: 'openai-compatible(http://10.0.0.6:8000/v1, llama3)',
    healthy: false,
    detail: 'GET /v1/models: connect ECONNREFUSED',
    responseTime: 2,
    router: { weight: 1, priority: 0, outstanding: 0, coolingDownForMs: 8200, consecutiveFailures: 3 },
  },
};

export function healthResultSchema(ok: boolean, example: Record<string, unknown>): Record<string, unknown> {
  return {
    type: 'object',
    required: ['status', 'details'],
    properties: {
      status: {
        type: 'string',
        enum: ok ? ['ok', 'degraded'] : ['error', 'shutting_down'],
        description: ok
          ? '`degraded`: serving, but a check is impaired (an optional dependency or one of several deployments is down)'
          : '`shutting_down`: the process is draining; `error`: a required check is down',
        example: ok ? 'ok' : 'error',
      },
      info: { ...indicatorMap(ok ? example : {}), nullable: true, description: 'Checks that are up or degraded' },
      error: { ...indicatorMap(ok ? {} : example), nullable: true, description: 'Checks that are down' },
      details: indicatorMap(example),
    },
  };
}

export const liveOkSchema = healthResultSchema(true, {
  process: { status: 'up', pid: 4242, instance: 'host-a:4242', uptimeSeconds: 73, phase: 'serving' },
});
export const readyOkSchema = healthResultSchema(true, READY_EXAMPLE);
export const readyDownSchema = healthResultSchema(false, NOT_READY_EXAMPLE);
export const providersOkSchema = healthResultSchema(true, PROVIDERS_EXAMPLE);
export const providersDownSchema = healthResultSchema(false, {
  'my-model#0': { ...PROVIDERS_EXAMPLE['my-model#0'], status: 'down', healthy: false, detail: 'the model failed to load' },
});
