import type { INestApplication } from '@nestjs/common';
import { DocumentBuilder, type OpenAPIObject, SwaggerModule } from '@nestjs/swagger';
import { routeNeedsKey } from './common/api-keys.js';
import { HotRoutes } from './common/hot-routes.js';
import { openApiComponents } from './openai/openai.schemas.js';

export interface OpenApiOptions {
  /** API_KEYS is set: the guarded operations (common/api-keys.ts) require the bearer scheme. */
  readonly apiKeys: boolean;
}

/**
 * Builds the OpenAPI 3 document from the controllers' decorators, the hot routes' operations (the
 * same code registers them with Fastify) and the shared JSON schemas.
 */
export function createOpenApiDocument(app: INestApplication, options: OpenApiOptions = { apiKeys: false }): OpenAPIObject {
  const config = new DocumentBuilder()
    .setTitle('LLM inference API')
    .setDescription(
      'OpenAI-compatible inference (chat completions, completions, models; streaming over server-sent events), ' +
        'the simple `GET /predict` shape, and health endpoints for balancers. Errors always have the OpenAI shape ' +
        '`{"error":{"message","type","param","code"}}`.',
    )
    .setVersion('0.1.0')
    .addBearerAuth({
      type: 'http',
      scheme: 'bearer',
      description: 'One of the keys in API_KEYS (also accepted as an `x-api-key` header). Required on /v1 and /predict when the server has API_KEYS set.',
    })
    .build();
  const document = SwaggerModule.createDocument(app, config);
  for (const [path, item] of Object.entries(app.get(HotRoutes).paths())) document.paths[path] = { ...document.paths[path], ...item };
  if (options.apiKeys) {
    for (const [path, item] of Object.entries(document.paths)) {
      if (!routeNeedsKey(path.replace(/\{([^}]+)\}/g, ':$1'))) continue;
      for (const method of ['get', 'put', 'post', 'delete', 'patch'] as const) {
        const operation = item[method];
        if (operation) operation.security = [{ bearer: [] }];
      }
    }
  }
  document.components ??= {};
  document.components.schemas = {
    ...document.components.schemas,
    ...(structuredClone(openApiComponents) as unknown as Record<string, object>),
  };
  return document;
}

export function setupOpenApi(app: INestApplication, options: OpenApiOptions): void {
  SwaggerModule.setup('docs', app, () => createOpenApiDocument(app, options), { jsonDocumentUrl: 'docs-json' });
}
