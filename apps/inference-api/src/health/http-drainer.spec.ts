import { once } from 'node:events';
import { createServer, type IncomingMessage, request, type Server, type ServerResponse } from 'node:http';
import { Agent } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { HttpDrainer, InFlightList } from './http-drainer.js';

interface Got {
  status: number;
  headers: IncomingMessage['headers'];
  body: string;
  socketClosed: Promise<void>;
}

function get(port: number, path: string, agent: Agent): Promise<Got> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path, agent }, (res) => {
      let body = '';
      res.on('data', (d: Buffer) => (body += d.toString()));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body, socketClosed }));
    });
    let socketClosed: Promise<void> = Promise.resolve();
    req.on('socket', (socket) => {
      socketClosed = new Promise((done) => socket.once('close', () => done()));
    });
    req.on('error', reject);
    req.end();
  });
}

describe('HttpDrainer', () => {
  let server: Server;
  let agent: Agent;

  async function start(handler: (req: IncomingMessage, res: ServerResponse) => void): Promise<{ port: number; drainer: HttpDrainer }> {
    server = createServer(handler);
    server.keepAliveTimeout = 60_000;
    const drainer = new HttpDrainer(server, { idlePollMs: 1_000 }).track();
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    agent = new Agent({ keepAlive: true, maxSockets: 4 });
    return { port: (server.address() as AddressInfo).port, drainer };
  }

  afterEach(() => {
    agent?.destroy();
    server?.closeAllConnections();
    server?.close();
  });

  it('closes idle keep-alive connections at once: they do not hold the drain', async () => {
    const { port, drainer } = await start((_req, res) => res.end('ok'));
    const got = await get(port, '/', agent);
    expect(got.headers.connection).toBe('keep-alive');
    const started = Date.now();
    const result = await drainer.drain(5_000);
    expect(result).toMatchObject({ completed: true, cut: 0 });
    expect(Date.now() - started).toBeLessThan(500);
    await got.socketClosed;
  });

  it('waits for an in-flight request, answers it with Connection: close, then closes', async () => {
    const { port, drainer } = await start((_req, res) => setTimeout(() => res.end('slow'), 300));
    const pending = get(port, '/slow', agent);
    await new Promise((r) => setTimeout(r, 50));
    expect(drainer.inFlightCount).toBe(1);
    const result = await drainer.drain(5_000);
    const got = await pending;
    expect(got).toMatchObject({ status: 200, body: 'slow' });
    expect(got.headers.connection).toBe('close');
    expect(result).toMatchObject({ completed: true, cut: 0 });
    expect(result.durationMs).toBeGreaterThanOrEqual(200);
    expect(result.durationMs).toBeLessThan(1_000);
  });

  it('refuses new connections while draining', async () => {
    const { port, drainer } = await start((_req, res) => setTimeout(() => res.end('slow'), 300));
    const pending = get(port, '/slow', agent);
    await new Promise((r) => setTimeout(r, 50));
    const drained = drainer.drain(5_000);
    await expect(get(port, '/new', new Agent({ keepAlive: false }))).rejects.toThrow(/ECONNREFUSED/);
    await pending;
    await drained;
  });

  it('lets a stream whose keep-alive headers are already out finish, then closes its connection right away', async () => {
    const { port, drainer } = await start((_req, res) => {
      res.writeHead(200, { 'content-type': 'text/event-stream', connection: 'keep-alive' });
      let n = 0;
      const timer = setInterval(() => {
        res.write(`data: ${n}\n\n`);
        if (++n === 5) {
          clearInterval(timer);
          res.end('data: [DONE]\n\n');
        }
      }, 60);
    });
    const pending = get(port, '/stream', agent);
    await new Promise((r) => setTimeout(r, 100));
    const result = await drainer.drain(5_000);
    const got = await pending;
    expect(got.body).toContain('data: [DONE]');
    expect(result).toMatchObject({ completed: true, cut: 0 });
    // Closed after the stream, not after the idle poll (1 s here) or the keep-alive timeout.
    expect(result.durationMs).toBeLessThan(800);
  });

  it('cuts what still runs at the deadline and reports it', async () => {
    const { port, drainer } = await start(() => {
      // never answers
    });
    const pending = get(port, '/hang', agent).catch((error: unknown) => error);
    await new Promise((r) => setTimeout(r, 50));
    const result = await drainer.drain(200);
    expect(result).toMatchObject({ completed: false, cut: 1 });
    expect(result.durationMs).toBeLessThan(1_000);
    expect(await pending).toBeInstanceOf(Error);
  });
});

describe('InFlightList', () => {
  const res = (n: number) => ({ n }) as unknown as ServerResponse;

  it('adds, removes from the head, the middle and the tail, and ignores a second removal', () => {
    const list = new InFlightList();
    const [a, b, c, d] = [res(1), res(2), res(3), res(4)];
    const nodes = [a, b, c, d].map((r) => list.add(r));
    expect(list.size).toBe(4);
    expect([...list]).toEqual([d, c, b, a]);
    list.remove(nodes[1]!); // middle
    expect([...list]).toEqual([d, c, a]);
    list.remove(nodes[3]!); // head
    expect([...list]).toEqual([c, a]);
    list.remove(nodes[0]!); // tail
    expect([...list]).toEqual([c]);
    list.remove(nodes[0]!); // again: no effect
    list.remove(nodes[3]!);
    expect(list.size).toBe(1);
    list.remove(nodes[2]!);
    expect(list.size).toBe(0);
    expect([...list]).toEqual([]);
    list.remove(nodes[2]!);
    expect(list.size).toBe(0);
    const e = res(5);
    list.add(e);
    expect([...list]).toEqual([e]);
  });
});
