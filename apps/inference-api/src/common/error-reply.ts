import type { FastifyReply, FastifyRequest } from 'fastify';
import { mapError, retryAfterOf } from './error-mapping.js';

/**
 * Writes any error as the OpenAI-shaped JSON body with the right status: the one place where errors
 * become responses, used by the Nest exception filter (controller routes) and as the Fastify error
 * handler of the hot routes. Unexpected errors are logged with their stack and the request id; the
 * client only sees the request id.
 */
export function replyWithError(error: unknown, request: FastifyRequest, reply: FastifyReply): void {
  const { status, body, unexpected } = mapError(error, request.id);
  if (unexpected) request.log.error({ err: error }, 'unhandled error');
  // The client's message may be a generic one: the log keeps what happened (the provider's own message).
  else if (status >= 500) request.log.warn({ status, code: body.error.code, detail: error instanceof Error ? error.message : String(error) }, 'request failed');
  if (reply.sent || reply.raw.headersSent) {
    // Too late for a status: the stream writer reports errors in-band. Make sure the socket ends.
    if (!reply.raw.writableEnded) reply.raw.end();
    return;
  }
  if (status === 499) {
    // The client is gone; nobody reads this.
    reply.raw.destroy();
    return;
  }
  // An upstream's `retry-after` (429, 503) reaches the client: the OpenAI SDKs wait that long before retrying.
  const wait = retryAfterOf(error);
  if (wait !== undefined) reply.header('retry-after', String(wait));
  void reply.status(status).header('content-type', 'application/json; charset=utf-8').send(body);
}
