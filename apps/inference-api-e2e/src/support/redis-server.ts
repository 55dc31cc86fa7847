import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { createConnection } from 'node:net';
import { tmpdir } from 'node:os';
import { freePort } from './free-port.js';

export interface RedisServer {
  readonly port: number;
  readonly url: string;
  /** Stops the server (SIGTERM, waits for exit). */
  stop(): Promise<void>;
  /** Starts it again on the same port (after stop()). */
  restart(): Promise<void>;
  /** Sends one inline command and returns the raw RESP reply (for FLUSHALL, KEYS, SET ... in tests). */
  command(...args: string[]): Promise<string>;
}

/** Starts a real `redis-server` (Debian package) on a free loopback port, no persistence. */
export async function startRedisServer(): Promise<RedisServer> {
  const port = await freePort();
  // No persistence (--save '', no AOF): nothing is written; --dir only keeps Redis out of the repo.
  const dir = tmpdir();
  let child: ChildProcess | undefined;

  const start = async () => {
    child = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', dir], {
      stdio: 'ignore',
    });
    const deadline = Date.now() + 10_000;
    for (;;) {
      try {
        if ((await command(port, 'PING')).startsWith('+PONG')) return;
      } catch {
        // not up yet
      }
      if (Date.now() > deadline) throw new Error(`redis-server did not start on port ${port}`);
      await new Promise((r) => setTimeout(r, 50));
    }
  };
  const stop = async () => {
    const c = child;
    child = undefined;
    if (!c || c.exitCode !== null || c.signalCode !== null) return;
    c.kill('SIGTERM');
    await once(c, 'exit');
  };
  await start();
  return {
    port,
    url: `redis://127.0.0.1:${port}`,
    async stop() {
      await stop();
    },
    restart: start,
    command: (...args) => command(port, ...args),
  };
}

function command(port: number, ...args: string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = createConnection({ port, host: '127.0.0.1' });
    let data = '';
    const payload = `*${args.length}\r\n${args.map((a) => `$${Buffer.byteLength(a)}\r\n${a}\r\n`).join('')}`;
    socket.setTimeout(2_000, () => socket.destroy(new Error('redis command timed out')));
    socket.on('connect', () => socket.write(payload));
    socket.on('data', (chunk) => {
      data += chunk.toString();
      // Good enough for the simple replies tests need: wait a tick for the rest of a bulk reply.
      setImmediate(() => socket.end());
    });
    socket.on('end', () => resolve(data));
    socket.on('error', reject);
  });
}
