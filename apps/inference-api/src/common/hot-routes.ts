import { Global, Injectable, Module } from '@nestjs/common';
import { HttpAdapterHost } from '@nestjs/core';
import type { OperationObject, PathItemObject } from '@nestjs/swagger';
import type { FastifyInstance, FastifyReply, FastifyRequest, FastifySchema } from 'fastify';
import { replyWithError } from './error-reply.js';

/**
 * A route Fastify serves directly: the inference routes, where every microsecond of CPU per request
 * is throughput. NestJS stays the application framework (modules, DI, lifecycle, the other routes),
 * but its per-request pipeline (router proxy, execution context, param factories, interceptor
 * chain; ~1.5 µs of CPU per request measured on the bench) is skipped. What a controller route gets
 * from Nest, these get from Fastify: the JSON schemas validate and serialise (compiled at boot),
 * errors go through the same replyWithError as the exception filter, and the OpenAPI operation is
 * merged into the generated document (openapi.ts).
 */
export interface HotRoute {
  readonly method: 'GET' | 'POST' | 'DELETE';
  /** Fastify path, e.g. `/v1/chat/completions`. */
  readonly url: string;
  readonly schema: FastifySchema;
  readonly openapi: OperationObject;
  readonly handler: (request: FastifyRequest, reply: FastifyReply) => Promise<unknown>;
}

@Injectable()
export class HotRoutes {
  private readonly routes: HotRoute[] = [];

  constructor(private readonly adapterHost: HttpAdapterHost) {}

  /** Registers a route on the Fastify instance (call from onModuleInit, before the app listens). */
  register(route: HotRoute): void {
    const fastify = this.adapterHost.httpAdapter.getInstance<FastifyInstance>();
    fastify.route({ method: route.method, url: route.url, schema: route.schema, errorHandler: replyWithError, handler: route.handler });
    this.routes.push(route);
  }

  /** The registered routes as OpenAPI path items (Fastify `:param` segments become `{param}`). */
  paths(): Record<string, PathItemObject> {
    const paths: Record<string, PathItemObject> = {};
    for (const route of this.routes) {
      const path = route.url.replace(/:([A-Za-z0-9_]+)/g, '{$1}');
      paths[path] = { ...paths[path], [route.method.toLowerCase()]: route.openapi };
    }
    return paths;
  }
}

@Global()
@Module({ providers: [HotRoutes], exports: [HotRoutes] })
export class HotRoutesModule {}
