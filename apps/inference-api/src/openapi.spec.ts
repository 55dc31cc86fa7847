import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { NestFastifyApplication } from '@nestjs/platform-fastify';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { createApp } from './bootstrap.js';
import { loadAppConfig } from './config/app-config.js';

/** Counts the imports of @nestjs/swagger made by the app's code. */
const swagger = vi.hoisted(() => ({ loads: 0 }));
vi.mock('@nestjs/swagger', async (importOriginal) => {
  swagger.loads += 1;
  return importOriginal();
});

describe('OpenAPI routes', () => {
  let dir: string;
  let app: NestFastifyApplication;

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'openapi-spec-'));
    const modelsFile = join(dir, 'models.yaml');
    // Nothing listens there: the document does not need the upstream.
    await writeFile(modelsFile, 'models:\n  - name: m\n    deployments:\n      - provider: openai-compatible\n        baseUrl: http://127.0.0.1:9/v1\n        model: m\n');
    const config = loadAppConfig({ MODELS_FILE: modelsFile, API_KEYS: 'sk-spec' });
    app = await createApp(config, pino({ level: 'silent' }));
    await app.getHttpAdapter().getInstance().ready();
  });

  afterAll(async () => {
    await app?.close();
    await rm(dir, { recursive: true, force: true });
  });

  it('loads @nestjs/swagger only when the docs are first asked for', async () => {
    expect(swagger.loads).toBe(0);
    const models = await app.inject({ url: '/v1/models', headers: { authorization: 'Bearer sk-spec' } });
    expect(models.statusCode).toBe(200);
    expect(swagger.loads).toBe(0);

    const [a, b] = await Promise.all([app.inject('/docs-json'), app.inject('/docs-json')]);
    expect(a.statusCode).toBe(200);
    expect(a.headers['content-type']).toMatch(/^application\/json/);
    expect(b.body).toBe(a.body);
    expect(swagger.loads).toBe(1);
    const document = a.json() as { openapi: string; paths: Record<string, Record<string, { tags?: string[]; security?: unknown }>> };
    expect(document.openapi).toMatch(/^3\./);
    // Operations from the deferred decorators (ApiDocs), from the hot routes, and the API-key marks.
    expect(document.paths['/v1/models']?.['get']).toMatchObject({ summary: 'List the models this server serves', tags: ['OpenAI'], security: [{ bearer: [] }] });
    expect(document.paths['/health/live']?.['get']).toMatchObject({ summary: 'Liveness', tags: ['Health'] });
    expect(document.paths['/health/live']?.['get']?.security).toBeUndefined();
    expect(document.paths['/v1/chat/completions']?.['post']?.security).toEqual([{ bearer: [] }]);
  });

  it('serves the document as YAML too', async () => {
    const res = await app.inject('/docs-yaml');
    expect(res.statusCode).toBe(200);
    expect(res.headers['content-type']).toMatch(/^text\/yaml/);
    expect(res.body).toMatch(/^openapi: 3\./m);
    expect(res.body).toContain('/v1/chat/completions:');
  });

  it('serves Swagger UI: the page, its initializer with the document, and its files', async () => {
    const page = await app.inject('/docs');
    expect(page.statusCode).toBe(200);
    expect(page.headers['content-type']).toMatch(/^text\/html/);
    expect(page.body).toContain('src="docs/swagger-ui-bundle.js"');
    const slash = await app.inject('/docs/');
    expect(slash.body).toContain('src="./swagger-ui-bundle.js"');

    const init = await app.inject('/docs/swagger-initializer.js');
    expect(init.statusCode).toBe(200);
    expect(init.headers['content-type']).toMatch(/^application\/javascript/);
    expect(init.body).toContain('SwaggerUIBundle({ spec: {"openapi":"3.');

    const css = await app.inject('/docs/swagger-ui.css');
    expect(css.statusCode).toBe(200);
    expect(css.headers['content-type']).toMatch(/^text\/css/);
    expect(css.headers['etag']).toBeTruthy();
    expect(css.body.length).toBeGreaterThan(10_000);
    const again = await app.inject({ url: '/docs/swagger-ui.css', headers: { 'if-none-match': String(css.headers['etag']) } });
    expect(again.statusCode).toBe(304);
    const bundle = await app.inject({ method: 'HEAD', url: '/docs/swagger-ui-bundle.js' });
    expect(bundle.statusCode).toBe(200);
    expect(bundle.headers['content-type']).toMatch(/javascript/);
  });

  it('serves no other file of the package, nor anything outside it', async () => {
    for (const url of ['/docs/LICENSE', '/docs/package.json', '/docs/..%2Fpackage.json', '/docs/swagger-ui.js.map', '/docs/%2e%2e%2f%2e%2e%2fpackage.json']) {
      const res = await app.inject(url);
      expect(res.statusCode, url).toBe(404);
      expect(res.json(), url).toMatchObject({ error: { type: 'invalid_request_error', code: 'not_found' } });
    }
  });
});
