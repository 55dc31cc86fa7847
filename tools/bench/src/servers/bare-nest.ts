/**
 * The framework tax: bare NestJS 12 on its Fastify adapter (the versions the API runs on), one
 * controller whose POST route answers the constant reply through `@Res()` as the API's routes do.
 * No modules, providers, logger, schemas or hooks of the API: the difference with bare Fastify is
 * what Nest itself costs per request, the difference with the API what the API adds on top.
 *
 *   node dist/servers/bare-nest.js --port 8000 --body-file reply.json
 */
import 'reflect-metadata';
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { Body, Controller, HttpCode, Module, Post, Res } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { FastifyAdapter, type NestFastifyApplication } from '@nestjs/platform-fastify';
import type { FastifyReply } from 'fastify';
import { exitOnSignal } from './exit-on-signal.js';

const { values } = parseArgs({ options: { port: { type: 'string' }, 'body-file': { type: 'string' } } });
const reply = readFileSync(values['body-file'] ?? '', 'utf8');

@Controller('v1')
class ConstantController {
  @Post('chat/completions')
  @HttpCode(200)
  chat(@Body() _body: unknown, @Res() res: FastifyReply): void {
    void res.header('content-type', 'application/json').send(reply);
  }

  @Post('completions')
  @HttpCode(200)
  completions(@Body() _body: unknown, @Res() res: FastifyReply): void {
    void res.header('content-type', 'application/json').send(reply);
  }
}

@Module({ controllers: [ConstantController] })
class BareModule {}

const app = await NestFactory.create<NestFastifyApplication>(BareModule, new FastifyAdapter({ keepAliveTimeout: 65_000 }), { logger: false });
await app.listen({ port: Number(values.port ?? 0), host: '127.0.0.1' });
exitOnSignal(() => app.close());
