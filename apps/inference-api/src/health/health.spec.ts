import 'reflect-metadata';
import { type ModelProvider, ModelRouter, type ProviderHealth } from '@infer/model-providers';
import { Global, Module } from '@nestjs/common';
import { FastifyAdapter, type NestFastifyApplication } from '@nestjs/platform-fastify';
import { HealthIndicatorService } from '@nestjs/terminus';
import { Test } from '@nestjs/testing';
import { afterEach, describe, expect, it } from 'vitest';
import { loadAppConfig } from '../config/app-config.js';
import { HotRoutesModule } from '../common/hot-routes.js';
import { APP_CONFIG } from '../config/config.tokens.js';
import { MODEL_ROUTER } from '../models/models.tokens.js';
import { createOpenApiDocument } from '../openapi.js';
import { AppLifecycle } from './app-lifecycle.js';
import { REDIS_PING, type RedisPing } from './health.tokens.js';
import { HealthModule } from './health.module.js';
import { ProvidersHealthIndicator } from './providers.health.js';

/** A provider whose only real method is health(). */
function fakeProvider(label: string, health: () => Promise<ProviderHealth>): ModelProvider {
  const unused = () => {
    throw new Error('not used');
  };
  return {
    specificationVersion: 'v1',
    kind: 'fake',
    label,
    capabilities: { chat: true, completion: true, streaming: true, embeddings: false },
    chat: unused,
    streamChat: unused,
    complete: unused,
    streamComplete: unused,
    health,
    close: async () => undefined,
  };
}

const healthy = (detail?: string) => async (): Promise<ProviderHealth> => ({ healthy: true, ...(detail ? { detail } : {}) });
const unhealthy = (detail: string) => async (): Promise<ProviderHealth> => ({ healthy: false, detail });
const hangs = () => () => new Promise<ProviderHealth>(() => undefined);

/** A router over `models`: model name -> the health function of each deployment. */
function fakeRouter(models: Record<string, Array<() => Promise<ProviderHealth>>>): ModelRouter {
  return new ModelRouter(
    Object.entries(models).flatMap(([name, list]) =>
      list.map((health, i) => ({ id: `${name}#${i}`, modelName: name, weight: 1, provider: fakeProvider(`fake(${name}#${i})`, health) })),
    ),
  );
}

describe('ProvidersHealthIndicator', () => {
  it('up when every deployment is healthy', async () => {
    const indicator = new ProvidersHealthIndicator(fakeRouter({ a: [healthy('loaded')], b: [healthy()] }), new HealthIndicatorService());
    const result = await indicator.readiness();
    expect(result).toMatchObject({
      'a#0': { status: 'up', model: 'a', kind: 'fake', label: 'fake(a#0)', healthy: true, detail: 'loaded' },
      'b#0': { status: 'up', model: 'b', healthy: true },
    });
  });

  it('degraded for an unhealthy deployment of a model that still has a healthy one; down when a model has none', async () => {
    const indicator = new ProvidersHealthIndicator(
      fakeRouter({ a: [healthy(), unhealthy('connect ECONNREFUSED')], b: [unhealthy('loading the model')] }),
      new HealthIndicatorService(),
    );
    const result = await indicator.readiness();
    expect(result['a#0']?.status).toBe('up');
    expect(result['a#1']).toMatchObject({ status: 'degraded', healthy: false, detail: 'connect ECONNREFUSED' });
    expect(result['b#0']).toMatchObject({ status: 'down', healthy: false, detail: 'loading the model' });
  });

  it('bounds a health() that never answers, and reports a throwing one as unhealthy', async () => {
    const indicator = new ProvidersHealthIndicator(
      fakeRouter({
        a: [hangs()],
        b: [
          async () => {
            throw new Error('broken');
          },
        ],
      }),
      new HealthIndicatorService(),
    );
    const started = Date.now();
    const result = await indicator.readiness(100);
    expect(Date.now() - started).toBeLessThan(1_000);
    expect(result['a#0']).toMatchObject({ status: 'down', detail: 'provider health check timed out after 100 ms' });
    expect(result['b#0']).toMatchObject({ status: 'down', detail: 'broken' });
  });

  it('details() adds the router view of each deployment', async () => {
    const indicator = new ProvidersHealthIndicator(fakeRouter({ a: [healthy()] }), new HealthIndicatorService());
    const result = await indicator.details();
    expect(result['a#0']).toMatchObject({
      status: 'up',
      router: { weight: 1, priority: 0, outstanding: 0, coolingDownForMs: 0, consecutiveFailures: 0 },
    });
  });

  it('details() reports the priority (fallback tier) of each deployment', async () => {
    const fallback = { id: 'a#1', modelName: 'a', weight: 1, priority: 1, provider: fakeProvider('fake(a#1)', healthy()) };
    const router = new ModelRouter([...fakeRouter({ a: [healthy()] }).deployments(), fallback]);
    const result = await new ProvidersHealthIndicator(router, new HealthIndicatorService()).details();
    expect(result['a#0']?.['router']).toEqual({ weight: 1, priority: 0, outstanding: 0, coolingDownForMs: 0, consecutiveFailures: 0 });
    expect(result['a#1']?.['router']).toEqual({ weight: 1, priority: 1, outstanding: 0, coolingDownForMs: 0, consecutiveFailures: 0 });
  });
});

describe('HealthController (/health/*)', () => {
  let app: NestFastifyApplication | undefined;

  afterEach(async () => {
    await app?.close();
    app = undefined;
  });

  async function start(options: {
    models: Record<string, Array<() => Promise<ProviderHealth>>>;
    env?: Record<string, string>;
    redisPing?: RedisPing;
  }): Promise<NestFastifyApplication> {
    const config = loadAppConfig(options.env ?? {});
    @Global()
    @Module({
      providers: [
        { provide: APP_CONFIG, useValue: config },
        { provide: MODEL_ROUTER, useValue: fakeRouter(options.models) },
        ...(options.redisPing ? [{ provide: REDIS_PING, useValue: options.redisPing }] : []),
      ],
      exports: [APP_CONFIG, MODEL_ROUTER, ...(options.redisPing ? [REDIS_PING] : [])],
    })
    class TestDepsModule {}
    const moduleRef = await Test.createTestingModule({ imports: [TestDepsModule, HotRoutesModule, HealthModule] }).compile();
    app = moduleRef.createNestApplication<NestFastifyApplication>(new FastifyAdapter(), { logger: false });
    await app.init();
    await app.getHttpAdapter().getInstance().ready();
    return app;
  }

  const get = async (a: NestFastifyApplication, url: string) => {
    const res = await a.inject({ method: 'GET', url });
    return { status: res.statusCode, headers: res.headers, body: res.json() as { status: string; details: Record<string, Record<string, unknown>> } };
  };

  it('live: 200 with the process, never checking anything else', async () => {
    const a = await start({ models: { m: [unhealthy('down')] } });
    const live = await get(a, '/health/live');
    expect(live.status).toBe(200);
    expect(live.headers['cache-control']).toBe('no-cache, no-store, must-revalidate');
    expect(live.body.details['process']).toMatchObject({ status: 'up', pid: process.pid, phase: 'serving' });
  });

  it('ready: 200 when providers (and Redis) are fine; 503 with terminus details when a model has no healthy deployment', async () => {
    const ok = await start({ models: { m: [healthy()] }, env: { REDIS_URL: 'redis://127.0.0.1:6379' }, redisPing: async () => undefined });
    const ready = await get(ok, '/health/ready');
    expect(ready.status).toBe(200);
    expect(ready.body.status).toBe('ok');
    expect(Object.keys(ready.body.details).sort()).toEqual(['m#0', 'redis']);
    await ok.close();

    const bad = await start({ models: { m: [unhealthy('the model failed to load')], n: [healthy(), unhealthy('refused')] } });
    const notReady = await get(bad, '/health/ready');
    expect(notReady.status).toBe(503);
    expect(notReady.body).toMatchObject({
      status: 'error',
      error: { 'm#0': { status: 'down', detail: 'the model failed to load' } },
      details: { 'n#0': { status: 'up' }, 'n#1': { status: 'degraded' } },
    });
  });

  it('ready: 503 shutting_down as soon as the drain begins; live stays 200', async () => {
    const a = await start({ models: { m: [healthy()] } });
    a.get(AppLifecycle).beginDrain('SIGTERM', 10_000);
    const ready = await get(a, '/health/ready');
    expect(ready.status).toBe(503);
    expect(ready.body).toMatchObject({ status: 'shutting_down', details: { lifecycle: { status: 'down', phase: 'draining', reason: 'SIGTERM' } } });
    const live = await get(a, '/health/live');
    expect(live.status).toBe(200);
    expect(live.body.details['process']?.['phase']).toBe('draining');
  });

  it('ready: 503 when REDIS_URL is set and nothing provides REDIS_PING, saying so', async () => {
    const a = await start({ models: { m: [healthy()] }, env: { REDIS_URL: 'redis://127.0.0.1:6379' } });
    const ready = await get(a, '/health/ready');
    expect(ready.status).toBe(503);
    expect(String(ready.body.details['redis']?.['message'])).toContain('REDIS_PING');
  });

  it('providers: per-deployment health with the router view', async () => {
    const a = await start({ models: { m: [healthy('ok'), unhealthy('refused')] } });
    const providers = await get(a, '/health/providers');
    expect(providers.status).toBe(200);
    expect(providers.body.status).toBe('degraded');
    expect(providers.body.details['m#1']).toMatchObject({ status: 'degraded', healthy: false, detail: 'refused', router: { priority: 0, outstanding: 0 } });
  });

  it('documents every health route in OpenAPI with the terminus shape', async () => {
    const a = await start({ models: { m: [healthy()] } });
    const doc = await createOpenApiDocument(a);
    for (const path of ['/health/live', '/health/ready', '/health/providers']) {
      const op = doc.paths[path]?.get;
      expect(op?.tags).toEqual(['Health']);
      const schema = (op?.responses['200'] as { content: Record<string, { schema: { properties: Record<string, unknown> } }> }).content['application/json']
        ?.schema;
      expect(Object.keys(schema?.properties ?? {}).sort()).toEqual(['details', 'error', 'info', 'status']);
    }
    expect(doc.paths['/health/ready']?.get?.responses['503']).toBeDefined();
    expect(doc.paths['/health/live']?.get?.responses['503']).toBeUndefined();
  });
});
