import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Client, Pool, request, requestImplementation } from './undici-parts.js';

describe('undici parts loaded without undici index', () => {
  it('are the classes and the request function undici exports', async () => {
    const undici = await import('undici');
    expect(Pool).toBe(undici.Pool);
    expect(Client).toBe(undici.Client);
    // undici's index copies its API onto Dispatcher.prototype: the same function.
    expect(requestImplementation).toBe(undici.Dispatcher.prototype.request);
  });

  describe('request through a Pool', () => {
    let server: Server;
    let origin: string;
    beforeAll(async () => {
      server = createServer((req, res) => {
        let body = '';
        req.setEncoding('utf8');
        req.on('data', (chunk: string) => (body += chunk));
        req.on('end', () => {
          res.writeHead(201, { 'content-type': 'text/plain' });
          res.end(`${req.method} ${req.url} ${body}`);
        });
      });
      await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
      origin = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    });
    afterAll(() => new Promise<void>((resolve) => server.close(() => resolve())));

    it('sends the request and streams the body back', async () => {
      const pool = new Pool(origin, { connections: 1 });
      try {
        const response = await request(pool, { method: 'POST', path: '/x?y=1', body: 'hello' });
        expect(response.statusCode).toBe(201);
        expect(response.headers['content-type']).toBe('text/plain');
        expect(await response.body.text()).toBe('POST /x?y=1 hello');
      } finally {
        await pool.close();
      }
    });
  });
});
