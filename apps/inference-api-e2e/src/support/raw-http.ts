import { createConnection, type Socket } from 'node:net';

export interface RawResponse {
  readonly status: number;
  readonly headers: Readonly<Record<string, string>>;
  readonly body: string;
}

export interface HeldRequest {
  /** Sends the end of the request head and resolves with the response. */
  finish(timeoutMs?: number): Promise<RawResponse>;
  destroy(): void;
}

/**
 * Opens a connection and sends a GET's head without its final blank line: the request is in
 * progress (as a balancer's probe on a keep-alive connection can be) when the test then signals
 * the server; `finish()` completes it. Shows what such a request gets during a drain.
 */
export async function holdRequest(port: number, path: string): Promise<HeldRequest> {
  const socket: Socket = createConnection({ port, host: '127.0.0.1' });
  await new Promise<void>((resolve, reject) => {
    socket.once('connect', resolve);
    socket.once('error', reject);
  });
  socket.write(`GET ${path} HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\n`);
  let data = '';
  socket.on('data', (d: Buffer) => (data += d.toString()));
  return {
    finish(timeoutMs = 5_000) {
      socket.write('\r\n');
      return new Promise<RawResponse>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`no complete response within ${timeoutMs} ms: ${data}`)), timeoutMs);
        const check = () => {
          const headEnd = data.indexOf('\r\n\r\n');
          if (headEnd < 0) return;
          const [statusLine = '', ...lines] = data.slice(0, headEnd).split('\r\n');
          const headers: Record<string, string> = {};
          for (const line of lines) {
            const i = line.indexOf(':');
            headers[line.slice(0, i).trim().toLowerCase()] = line.slice(i + 1).trim();
          }
          const length = Number(headers['content-length'] ?? NaN);
          const body = data.slice(headEnd + 4);
          if (Number.isFinite(length) && Buffer.byteLength(body) < length) return;
          clearTimeout(timer);
          socket.off('data', check);
          resolve({ status: Number(statusLine.split(' ')[1]), headers, body });
        };
        socket.on('data', check);
        socket.once('error', reject);
        check();
      });
    },
    destroy: () => socket.destroy(),
  };
}
