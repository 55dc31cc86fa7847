import { once } from 'node:events';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface RawUpstreamOptions {
  /** Response status (default 200). */
  readonly status?: number;
  /** Content type (default `text/event-stream`). */
  readonly contentType?: string;
  /** Delay between two chunks, ms (default 2). */
  readonly gapMs?: number;
}

export interface RawUpstream {
  /** Base URL ending in /v1. */
  readonly url: string;
  close(): Promise<void>;
}

/**
 * An HTTP server that answers every request with the same bytes: `chunks` written `gapMs` apart,
 * then the end. For the answers a real upstream gives that the fake upstream does not (split SSE
 * events, odd JSON shapes, malformed bodies): what a provider's own spec checks its parsing with.
 */
export async function startRawUpstream(chunks: readonly string[], options: RawUpstreamOptions = {}): Promise<RawUpstream> {
  const { status = 200, contentType = 'text/event-stream', gapMs = 2 } = options;
  const server = createServer((req, res) => {
    req.resume();
    res.writeHead(status, { 'content-type': contentType });
    let i = 0;
    const next = (): void => {
      if (i === chunks.length) {
        res.end();
        return;
      }
      res.write(chunks[i]);
      i += 1;
      setTimeout(next, gapMs);
    };
    next();
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/v1`,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

/** A raw upstream answering one JSON value. */
export function startJsonUpstream(body: unknown, status = 200): Promise<RawUpstream> {
  return startRawUpstream([JSON.stringify(body)], { status, contentType: 'application/json' });
}
