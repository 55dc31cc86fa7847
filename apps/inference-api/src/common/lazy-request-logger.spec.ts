import { Writable } from 'node:stream';
import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import { LazyRequestLogger } from './lazy-request-logger.js';

function capture(level: string) {
  const lines: Record<string, unknown>[] = [];
  const stream = new Writable({
    write(chunk: Buffer, _encoding, callback) {
      lines.push(JSON.parse(chunk.toString()) as Record<string, unknown>);
      callback();
    },
  });
  const root = pino({ level, redact: { paths: ['req.headers.authorization'], censor: '[redacted]' } }, stream);
  let children = 0;
  const child = root.child;
  root.child = function (this: typeof root, ...args: Parameters<typeof child>) {
    children += 1;
    return child.apply(this, args);
  } as typeof child;
  return { root, lines, children: () => children };
}

describe('LazyRequestLogger', () => {
  it('creates no child logger when nothing is logged at an enabled level', () => {
    const { root, lines, children } = capture('warn');
    const log = LazyRequestLogger.factory(root, { reqId: 'r1' }, {});
    log.info('not logged');
    log.debug({ x: 1 }, 'not logged');
    expect(children()).toBe(0);
    expect(lines).toHaveLength(0);
    expect(log.level).toBe('warn');
  });

  it('logs through a child with the request bindings (and the root redaction) once something is logged', async () => {
    const { root, lines, children } = capture('info');
    const log = LazyRequestLogger.factory(root, { reqId: 'r2' }, {});
    log.warn({ req: { headers: { authorization: 'Bearer secret' } } }, 'first');
    log.info('second');
    await new Promise((resolve) => setImmediate(resolve));
    expect(children()).toBe(1);
    expect(lines.map((l) => [l['reqId'], l['msg']])).toEqual([
      ['r2', 'first'],
      ['r2', 'second'],
    ]);
    expect(JSON.stringify(lines[0])).not.toContain('secret');
  });

  it('honours a per-request level set before the child exists', () => {
    const { root, lines } = capture('warn');
    const log = LazyRequestLogger.factory(root, { reqId: 'r3' }, {});
    log.level = 'debug';
    log.debug('now logged');
    expect(lines.map((l) => l['msg'])).toEqual(['now logged']);
    expect(log.level).toBe('debug');
  });

  it('gives child loggers of its own', () => {
    const { root, lines } = capture('info');
    const log = LazyRequestLogger.factory(root, { reqId: 'r4' }, {});
    log.child({ part: 'cache' }).info('nested');
    expect(lines[0]).toMatchObject({ reqId: 'r4', part: 'cache', msg: 'nested' });
  });

  it('makes children lazily too: bindings only, until something is logged', () => {
    const { root, lines, children } = capture('warn');
    const log = LazyRequestLogger.factory(root, { reqId: 'r5' }, {}).child({ key: 'team-a' });
    log.info('not logged');
    expect(children()).toBe(0);
    log.warn('logged');
    expect(children()).toBe(1);
    expect(lines[0]).toMatchObject({ reqId: 'r5', key: 'team-a', msg: 'logged' });
  });
});
