import { type ArgumentsHost, Catch, type ExceptionFilter } from '@nestjs/common';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { mapError } from './error-mapping.js';

/**
 * The safety net: every error reaching the edge becomes an OpenAI-shaped JSON body with the
 * right status. Unexpected errors are logged with their stack and the request id, and the
 * client only sees the request id.
 */
@Catch()
export class OpenAIExceptionFilter implements ExceptionFilter {
  catch(exception: unknown, host: ArgumentsHost): void {
    const http = host.switchToHttp();
    const reply = http.getResponse<FastifyReply>();
    const request = http.getRequest<FastifyRequest>();
    const { status, body, unexpected } = mapError(exception, request.id);
    if (unexpected) request.log.error({ err: exception }, 'unhandled error');
    else if (status >= 500) request.log.warn({ status, code: body.error.code, msg: body.error.message }, 'request failed');
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
    void reply.status(status).header('content-type', 'application/json; charset=utf-8').send(body);
  }
}
