import type { ResponsesObject } from '@nestjs/swagger';

const errorContent = { 'application/json': { schema: { $ref: '#/components/schemas/ErrorResponse' } } };

/** An OpenAPI response with the OpenAI error body. */
export function errorResponse(description: string): ResponsesObject[string] {
  return { description, content: errorContent };
}

/** The error responses every inference route can give, documented once. */
export const inferenceErrorResponses: ResponsesObject = {
  413: errorResponse('Request body too large'),
  429: errorResponse('Upstream rate limit'),
  500: errorResponse('Internal error (no details; see the request id)'),
  502: errorResponse('Upstream error'),
  503: errorResponse('No deployment available'),
  504: errorResponse('Upstream timeout'),
};

/** The @nestjs/swagger module, as `import('@nestjs/swagger')` resolves it. */
export type SwaggerApi = typeof import('@nestjs/swagger');
type DocsDecorator = ClassDecorator | MethodDecorator;

interface DeferredDocs {
  readonly target: object;
  readonly key: string | symbol | undefined;
  readonly decorators: (swagger: SwaggerApi) => readonly DocsDecorator[];
  applied: boolean;
}

const deferred: DeferredDocs[] = [];

/**
 * @nestjs/swagger decorators for a controller (class) or one of its routes (method), applied when the
 * OpenAPI document is first built (openapi.ts) instead of when the class is defined:
 *
 *   @ApiDocs((s) => [s.ApiOperation({ summary: 'List the models' }), s.ApiOkResponse({ schema })])
 *
 * The decorators are the library's own and set the same metadata; they only run later. This keeps
 * @nestjs/swagger out of a worker until something asks it for /docs: the package and what it
 * imports hold ~5 MB of heap, which costs a worker ~11 MB of RSS under load (README, Performance).
 */
export function ApiDocs(decorators: (swagger: SwaggerApi) => readonly DocsDecorator[]): ClassDecorator & MethodDecorator {
  return (target: object, key?: string | symbol) => {
    deferred.push({ target, key, decorators, applied: false });
  };
}

/** Applies every deferred ApiDocs decorator once (later calls apply only those defined since). */
export function applyApiDocs(swagger: SwaggerApi): void {
  for (const entry of deferred) {
    if (entry.applied) continue;
    entry.applied = true;
    for (const decorate of entry.decorators(swagger)) {
      if (entry.key === undefined) {
        (decorate as ClassDecorator)(entry.target as () => unknown);
      } else {
        const descriptor = Object.getOwnPropertyDescriptor(entry.target, entry.key);
        if (descriptor) (decorate as MethodDecorator)(entry.target, entry.key, descriptor);
      }
    }
  }
}
