import type { INestApplication } from '@nestjs/common';
import { DocumentBuilder, type OpenAPIObject, SwaggerModule } from '@nestjs/swagger';
import { HotRoutes } from './common/hot-routes.js';
import { openApiComponents } from './openai/openai.schemas.js';

/**
 * Builds the OpenAPI 3 document from the controllers' decorators, the hot routes' operations (the
 * same code registers them with Fastify) and the shared JSON schemas.
 */
export function createOpenApiDocument(app: INestApplication): OpenAPIObject {
  const config = new DocumentBuilder()
    .setTitle('LLM inference API')
    .setDescription(
      'OpenAI-compatible inference (chat completions, completions, models; streaming over server-sent events), ' +
        'the simple `GET /predict` shape, and health endpoints for balancers. Errors always have the OpenAI shape ' +
        '`{"error":{"message","type","param","code"}}`.',
    )
    .setVersion('0.1.0')
    .addBearerAuth({ type: 'http', scheme: 'bearer', description: 'Only when the server is configured with API keys.' })
    .build();
  const document = SwaggerModule.createDocument(app, config);
  for (const [path, item] of Object.entries(app.get(HotRoutes).paths())) document.paths[path] = { ...document.paths[path], ...item };
  document.components ??= {};
  document.components.schemas = {
    ...document.components.schemas,
    ...(structuredClone(openApiComponents) as unknown as Record<string, object>),
  };
  return document;
}

export function setupOpenApi(app: INestApplication): void {
  SwaggerModule.setup('docs', app, () => createOpenApiDocument(app), { jsonDocumentUrl: 'docs-json' });
}
