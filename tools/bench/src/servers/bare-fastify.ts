/**
 * The ceiling for a Fastify app: bare Fastify 5 (the version NestJS runs on) with one POST route
 * returning a constant JSON reply (the fake upstream's reply, byte for byte). Fastify parses the
 * JSON body as it does for any app route; no logger, no schema.
 *
 *   node dist/servers/bare-fastify.js --port 8000 --body-file reply.json
 */
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import Fastify, { type FastifyReply } from 'fastify';
import { exitOnSignal } from './exit-on-signal.js';

const { values } = parseArgs({ options: { port: { type: 'string' }, 'body-file': { type: 'string' } } });
const reply = readFileSync(values['body-file'] ?? '', 'utf8');

const app = Fastify({ logger: false, keepAliveTimeout: 65_000 });
const handler = async (_request: unknown, res: FastifyReply): Promise<string> => {
  void res.type('application/json');
  return reply;
};
app.post('/v1/chat/completions', handler);
app.post('/v1/completions', handler);
await app.listen({ port: Number(values.port ?? 0), host: '127.0.0.1' });
exitOnSignal(() => app.close());
