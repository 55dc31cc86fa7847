import SwaggerParser from '@apidevtools/swagger-parser';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type ApiServer, startApiServer } from '../support/api-server.js';

describe('OpenAPI', () => {
  let server: ApiServer;

  beforeAll(async () => {
    server = await startApiServer();
  });

  afterAll(async () => {
    await server?.stop();
  });

  it('serves a valid OpenAPI 3 document covering every route with schemas and examples', async () => {
    const res = await fetch(`${server.url}/docs-json`);
    expect(res.status).toBe(200);
    const document = (await res.json()) as { openapi: string; paths: Record<string, Record<string, unknown>>; components: { schemas: Record<string, unknown> } };
    expect(document.openapi).toMatch(/^3\./);
    // Throws with the list of problems if the document is not valid OpenAPI.
    await SwaggerParser.validate(structuredClone(document) as never);
    for (const path of ['/v1/chat/completions', '/v1/completions', '/v1/responses', '/v1/models', '/v1/models/{model}', '/predict', '/health/live', '/health/ready']) {
      expect(document.paths, path).toHaveProperty([path]);
    }
    const chat = document.paths['/v1/chat/completions']!['post'] as {
      requestBody: { content: Record<string, { schema: { $ref: string } }> };
      responses: Record<string, { content?: Record<string, unknown> }>;
    };
    expect(chat.requestBody.content['application/json']!.schema.$ref).toBe('#/components/schemas/CreateChatCompletionRequest');
    expect(Object.keys(chat.responses['200']!.content!)).toEqual(['application/json', 'text/event-stream']);
    for (const status of ['400', '404', '413', '500', '502', '504']) expect(chat.responses, status).toHaveProperty([status]);
    expect(document.components.schemas['CreateChatCompletionRequest']).toHaveProperty('example');
    const responses = document.paths['/v1/responses']!['post'] as typeof chat;
    expect(responses.requestBody.content['application/json']!.schema.$ref).toBe('#/components/schemas/CreateResponseRequest');
    expect(Object.keys(responses.responses['200']!.content!)).toEqual(['application/json', 'text/event-stream']);
    for (const name of ['CreateResponseRequest', 'Response', 'ResponseStreamEvent']) expect(document.components.schemas, name).toHaveProperty([name]);
  });

  it('serves Swagger UI: the page and every file it loads, with and without the trailing slash', async () => {
    for (const page of [`${server.url}/docs`, `${server.url}/docs/`]) {
      const res = await fetch(page);
      expect(res.status).toBe(200);
      expect(res.headers.get('content-type')).toMatch(/text\/html/);
      const html = await res.text();
      expect(html).toContain('<div id="swagger-ui">');
      const urls = [...html.matchAll(/(?:src|href)="([^"]+)"/g)].map((m) => new URL(m[1]!, page).href);
      expect(urls.length).toBeGreaterThanOrEqual(5);
      for (const url of urls) {
        const asset = await fetch(url);
        expect(asset.status, url).toBe(200);
        expect(new URL(url).pathname, url).toMatch(/^\/docs\//);
        const text = await asset.text();
        if (url.endsWith('swagger-initializer.js')) expect(text).toContain('"/v1/chat/completions"');
      }
    }
  });
});
