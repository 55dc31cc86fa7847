/**
 * Starts the Portkey AI gateway (`@portkey-ai/gateway`'s build/start-server.js, headless) bound to
 * 127.0.0.1. Its CLI has no host option and listens on every interface; the bench keeps all load on
 * loopback, so this wrapper makes a listen() without a host bind 127.0.0.1 before loading it.
 *
 *   PORTKEY_START_SERVER=/path/to/start-server.js node dist/servers/portkey-loopback.js --headless --port=8787
 */
import { Server } from 'node:net';
import { pathToFileURL } from 'node:url';

const script = process.env['PORTKEY_START_SERVER'];
if (!script) throw new Error('PORTKEY_START_SERVER is not set');

type Listen = (...args: unknown[]) => Server;
const original = Server.prototype.listen as unknown as Listen;
(Server.prototype as unknown as { listen: Listen }).listen = function listen(this: Server, ...args: unknown[]): Server {
  const [first, second] = args;
  if (typeof first === 'number' && typeof second !== 'string') return original.call(this, first, '127.0.0.1', ...args.slice(1));
  if (first !== null && typeof first === 'object' && !('host' in first) && 'port' in first) {
    return original.call(this, { ...first, host: '127.0.0.1' }, ...args.slice(1));
  }
  return original.apply(this, args);
};
await import(pathToFileURL(script).href);
