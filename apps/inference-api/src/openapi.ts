import { createRequire } from 'node:module';
import { type INestApplication, NotFoundException } from '@nestjs/common';
import type { OpenAPIObject } from '@nestjs/swagger';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { stringify as toYaml } from 'yaml';
import { applyApiDocs } from './common/api-docs.js';
import { routeNeedsKey } from './common/api-keys.js';
import { replyWithError } from './common/error-reply.js';
import { HotRoutes } from './common/hot-routes.js';
import { openApiComponents } from './openai/openai.schemas.js';

export interface OpenApiOptions {
  /** API_KEYS is set: the guarded operations (common/api-keys.ts) require the bearer scheme. */
  readonly apiKeys: boolean;
}

/**
 * Builds the OpenAPI 3 document from the controllers' decorators (ApiDocs, applied here), the hot
 * routes' operations (the same code registers them with Fastify) and the shared JSON schemas.
 * @nestjs/swagger is imported here, on first use, not when the app starts (see ApiDocs).
 */
export async function createOpenApiDocument(app: INestApplication, options: OpenApiOptions = { apiKeys: false }): Promise<OpenAPIObject> {
  const swagger = await import('@nestjs/swagger');
  applyApiDocs(swagger);
  const config = new swagger.DocumentBuilder()
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
      description: 'One of the keys in API_KEYS (also accepted as an `x-api-key` header). Required on /v1, /predict and /health/providers when the server has API keys (API_KEYS, API_KEYS_FILE).',
    })
    .build();
  const document = swagger.SwaggerModule.createDocument(app, config);
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

/** Swagger UI's files (swagger-ui-dist) that the page below loads, served from the package's folder. */
const UI_ASSETS = new Set(['swagger-ui.css', 'swagger-ui-bundle.js', 'swagger-ui-standalone-preset.js', 'favicon-32x32.png', 'favicon-16x16.png']);

/** Swagger UI's page; `base` is where the assets are relative to the page's URL. */
function uiPage(base: string): string {
  return `<!DOCTYPE html>
<html lang="en">
<head>
  <meta charset="UTF-8">
  <title>LLM inference API - Swagger UI</title>
  <link rel="stylesheet" type="text/css" href="${base}swagger-ui.css">
  <link rel="icon" type="image/png" href="${base}favicon-32x32.png" sizes="32x32">
  <link rel="icon" type="image/png" href="${base}favicon-16x16.png" sizes="16x16">
  <style>html { box-sizing: border-box; overflow-y: scroll; } *, *:before, *:after { box-sizing: inherit; } body { margin: 0; background: #fafafa; }</style>
</head>
<body>
  <div id="swagger-ui"></div>
  <script src="${base}swagger-ui-bundle.js" charset="UTF-8"></script>
  <script src="${base}swagger-ui-standalone-preset.js" charset="UTF-8"></script>
  <script src="${base}swagger-initializer.js" charset="UTF-8"></script>
</body>
</html>
`;
}

interface BuiltDocs {
  readonly json: string;
  readonly initializer: string;
  yaml?: string;
}

/**
 * Serves the document and Swagger UI: `/docs` (UI), `/docs-json`, `/docs-yaml`, the paths
 * SwaggerModule.setup used. The routes are registered at boot (Fastify cannot add routes later);
 * the document is built by the first request that needs it (the JSON, the YAML or the UI's
 * initializer, which embeds it as SwaggerModule's does) and kept. Swagger UI's files are streamed
 * from swagger-ui-dist by @fastify/send (ETag, Last-Modified, HEAD, ranges), imported on first use.
 */
export function registerOpenApiRoutes(app: INestApplication, options: OpenApiOptions): void {
  const fastify = app.getHttpAdapter().getInstance() as FastifyInstance;
  let built: Promise<BuiltDocs> | undefined;
  const docs = (): Promise<BuiltDocs> =>
    (built ??= createOpenApiDocument(app, options).then(
      (document) => {
        const json = JSON.stringify(document);
        const initializer =
          'window.onload = function () {\n' +
          `  window.ui = SwaggerUIBundle({ spec: ${json}, dom_id: '#swagger-ui', deepLinking: true,\n` +
          '    presets: [SwaggerUIBundle.presets.apis, SwaggerUIStandalonePreset], layout: "StandaloneLayout" });\n};\n';
        return { json, initializer };
      },
      (error: unknown) => {
        built = undefined; // the next request tries again
        throw error;
      },
    ));
  const assetsRoot = (createRequire(import.meta.url)('swagger-ui-dist/absolute-path.js') as () => string)();

  const route = (url: string, handler: (request: FastifyRequest<{ Params: { file?: string } }>, reply: FastifyReply) => Promise<unknown>): void => {
    fastify.route({ method: 'GET', url, errorHandler: replyWithError, handler });
  };
  route('/docs-json', async (_request, reply) => reply.type('application/json; charset=utf-8').send((await docs()).json));
  route('/docs-yaml', async (_request, reply) => {
    const built = await docs();
    built.yaml ??= toYaml(JSON.parse(built.json), { aliasDuplicateObjects: false, lineWidth: 0 });
    return reply.type('text/yaml; charset=utf-8').send(built.yaml);
  });
  // Without the trailing slash the page's relative URLs need the folder name.
  route('/docs', async (_request, reply) => reply.type('text/html; charset=utf-8').send(uiPage('docs/')));
  route('/docs/', async (_request, reply) => reply.type('text/html; charset=utf-8').send(uiPage('./')));
  route('/docs/:file', async (request, reply) => {
    const file = request.params.file ?? '';
    if (file === 'index.html') return reply.type('text/html; charset=utf-8').send(uiPage('./'));
    if (file === 'swagger-initializer.js') return reply.type('application/javascript; charset=utf-8').send((await docs()).initializer);
    if (!UI_ASSETS.has(file)) throw new NotFoundException(`Cannot GET ${request.url}`);
    const { default: send } = await import('@fastify/send');
    const { statusCode, headers, stream } = await send(request.raw, `/${file}`, { root: assetsRoot });
    return reply.code(statusCode).headers(headers).send(stream);
  });
}
