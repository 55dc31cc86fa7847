import type { FastifyReply } from 'fastify';

/**
 * An AbortSignal that fires when the client disconnects before the response is finished.
 * Passed down to providers so a gone client stops generation upstream.
 */
export function clientAbortSignal(reply: FastifyReply): AbortSignal {
  const controller = new AbortController();
  const res = reply.raw;
  res.once('close', () => {
    if (!res.writableFinished) controller.abort();
  });
  return controller.signal;
}
