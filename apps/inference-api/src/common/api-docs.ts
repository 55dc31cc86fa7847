import { applyDecorators } from '@nestjs/common';
import { ApiResponse } from '@nestjs/swagger';

const errorSchema = { $ref: '#/components/schemas/ErrorResponse' };

/** The error responses every inference route can give, documented once. */
export function ApiErrorResponses(): MethodDecorator & ClassDecorator {
  return applyDecorators(
    ApiResponse({ status: 413, description: 'Request body too large', schema: errorSchema }),
    ApiResponse({ status: 429, description: 'Upstream rate limit', schema: errorSchema }),
    ApiResponse({ status: 500, description: 'Internal error (no details; see the request id)', schema: errorSchema }),
    ApiResponse({ status: 502, description: 'Upstream error', schema: errorSchema }),
    ApiResponse({ status: 503, description: 'No deployment available', schema: errorSchema }),
    ApiResponse({ status: 504, description: 'Upstream timeout', schema: errorSchema }),
  );
}
