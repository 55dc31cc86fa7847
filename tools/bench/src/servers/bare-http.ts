/**
 * The physical baseline: bare `node:http` answering every request with a constant JSON reply
 * (the fake upstream's reply to the bench request, byte for byte). It reads the request body
 * (a real server must) but does not parse it.
 *
 *   node dist/servers/bare-http.js --port 8000 --body-file reply.json
 */
import { readFileSync } from 'node:fs';
import { createServer } from 'node:http';
import { parseArgs } from 'node:util';
import { exitOnSignal } from './exit-on-signal.js';

const { values } = parseArgs({ options: { port: { type: 'string' }, 'body-file': { type: 'string' } } });
const reply = readFileSync(values['body-file'] ?? '');
const headers = { 'content-type': 'application/json', 'content-length': String(reply.length) };

const server = createServer({ keepAlive: true, noDelay: true }, (req, res) => {
  req.on('data', () => undefined);
  req.on('end', () => {
    res.writeHead(200, headers);
    res.end(reply);
  });
});
server.keepAliveTimeout = 65_000;
server.listen(Number(values.port ?? 0), '127.0.0.1');
exitOnSignal(() => {
  server.closeAllConnections();
  return new Promise<void>((resolve) => server.close(() => resolve()));
});
