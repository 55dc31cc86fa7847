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
