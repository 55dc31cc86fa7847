import type { HttpAdapterHost } from '@nestjs/core';
import Fastify from 'fastify';
import { describe, expect, it } from 'vitest';
import { ApiError } from './api-error.js';
import { HotRoutes } from './hot-routes.js';

function setup() {
  const fastify = Fastify();
  const routes = new HotRoutes({ httpAdapter: { getInstance: () => fastify } } as unknown as HttpAdapterHost);
  return { fastify, routes };
}

describe('HotRoutes', () => {
  it('serves a route with its schema and answers errors in the OpenAI shape', async () => {
    const { fastify, routes } = setup();
    routes.register({
      method: 'POST',
      url: '/v1/things/:id',
      schema: {
        body: { type: 'object', required: ['name'], properties: { name: { type: 'string' } } },
        response: { 200: { type: 'object', properties: { id: { type: 'string' }, name: { type: 'string' } } } },
      },
      openapi: { summary: 'Make a thing', responses: { 200: { description: 'ok' } } },
      handler: async (request) => {
        const { name } = request.body as { name: string };
        if (name === 'missing') throw ApiError.modelNotFound(name);
        return { id: (request.params as { id: string }).id, name, secret: 'not serialised' };
      },
    });
    const ok = await fastify.inject({ method: 'POST', url: '/v1/things/7', payload: { name: 'a' } });
    expect([ok.statusCode, ok.json()]).toEqual([200, { id: '7', name: 'a' }]);
    const invalid = await fastify.inject({ method: 'POST', url: '/v1/things/7', payload: { other: 1 } });
    expect(invalid.statusCode).toBe(400);
    expect(invalid.json()).toMatchObject({ error: { type: 'invalid_request_error', code: 'invalid_request' } });
    const notFound = await fastify.inject({ method: 'POST', url: '/v1/things/7', payload: { name: 'missing' } });
    expect(notFound.statusCode).toBe(404);
    expect(notFound.json()).toMatchObject({ error: { code: 'model_not_found', param: 'model' } });
    const badJson = await fastify.inject({ method: 'POST', url: '/v1/things/7', payload: '{"name":', headers: { 'content-type': 'application/json' } });
    expect([badJson.statusCode, badJson.json().error.code]).toEqual([400, 'invalid_json']);
    await fastify.close();
  });

  it('lists its routes as OpenAPI path items', () => {
    const { routes } = setup();
    const handler = async () => ({});
    routes.register({ method: 'GET', url: '/v1/things/:id', schema: {}, openapi: { summary: 'get', responses: {} }, handler });
    routes.register({ method: 'POST', url: '/v1/things/:id', schema: {}, openapi: { summary: 'post', responses: {} }, handler });
    expect(routes.paths()).toEqual({
      '/v1/things/{id}': { get: { summary: 'get', responses: {} }, post: { summary: 'post', responses: {} } },
    });
  });
});
