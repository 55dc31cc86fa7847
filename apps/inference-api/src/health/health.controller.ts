import { Controller, Get, Inject, Logger, Res, ServiceUnavailableException } from '@nestjs/common';
import {
  HealthCheck,
  type HealthCheckResult,
  HealthCheckService,
  type HealthIndicatorFunction,
  HealthIndicatorService,
} from '@nestjs/terminus';
import type { FastifyReply } from 'fastify';
import { ApiDocs } from '../common/api-docs.js';
import type { AppConfig } from '../config/app-config.js';
import { APP_CONFIG } from '../config/config.tokens.js';
import { AppLifecycle } from './app-lifecycle.js';
import {
  liveOkSchema,
  providersDownSchema,
  providersOkSchema,
  readyDownSchema,
  readyOkSchema,
} from './health.schemas.js';
import { ProvidersHealthIndicator } from './providers.health.js';
import { RedisHealthIndicator } from './redis.health.js';

/**
 * Probes for balancers and orchestrators. Answers have terminus's shape; a failing check gives
 * 503 with the same shape (not the OpenAI error shape of the inference routes). Probes are not
 * logged per request; readiness changes are logged once per transition.
 */
@ApiDocs((s) => [s.ApiTags('Health')])
@Controller('health')
export class HealthController {
  private readonly logger = new Logger('Health');
  private lastReady: boolean | undefined;

  constructor(
    private readonly health: HealthCheckService,
    private readonly indicators: HealthIndicatorService,
    private readonly lifecycle: AppLifecycle,
    private readonly providers: ProvidersHealthIndicator,
    private readonly redis: RedisHealthIndicator,
    @Inject(APP_CONFIG) private readonly config: AppConfig,
  ) {}

  @Get('live')
  @HealthCheck({ noCache: true, swaggerDocumentation: false })
  @ApiDocs((s) => [
    s.ApiOperation({
      summary: 'Liveness',
      description: 'The process answers. Checks nothing external, and stays 200 while the process drains for shutdown.',
    }),
    s.ApiOkResponse({ description: 'The process is alive', schema: liveOkSchema }),
  ])
  async live(@Res({ passthrough: true }) reply: FastifyReply): Promise<HealthCheckResult> {
    return this.run(reply, [
      () =>
        this.indicators.check('process').up({
          pid: process.pid,
          instance: this.config.instanceId,
          uptimeSeconds: Math.round(process.uptime()),
          phase: this.lifecycle.phase,
        }),
    ]);
  }

  @Get('ready')
  @HealthCheck({ noCache: true, swaggerDocumentation: false })
  @ApiDocs((s) => [
    s.ApiOperation({
      summary: 'Readiness',
      description:
        'Whether this instance should get traffic: 503 as soon as shutdown begins (`status: shutting_down`), when Redis ' +
        'is configured, required and does not answer a PING in time, or when a model has no healthy deployment ' +
        '(model not loaded, upstream unreachable). An unhealthy deployment of a model that has a healthy one is `degraded` (200).',
    }),
    s.ApiOkResponse({ description: 'Ready', schema: readyOkSchema }),
    s.ApiServiceUnavailableResponse({ description: 'Not ready (details per check)', schema: readyDownSchema }),
  ])
  async ready(@Res({ passthrough: true }) reply: FastifyReply): Promise<HealthCheckResult> {
    if (this.lifecycle.isShuttingDown) {
      reply.code(503);
      this.noteReadiness(false, 'shutting down');
      const lifecycle = this.indicators.check('lifecycle').down({ ...this.lifecycle.snapshot() });
      return { status: 'shutting_down', info: {}, error: lifecycle, details: lifecycle };
    }
    const checks: HealthIndicatorFunction[] = [() => this.providers.readiness()];
    if (this.redis.configured) checks.unshift(() => this.redis.check('redis'));
    const result = await this.run(reply, checks);
    this.noteReadiness(reply.statusCode < 400, result.error);
    return result;
  }

  @Get('providers')
  @HealthCheck({ noCache: true, swaggerDocumentation: false })
  @ApiDocs((s) => [
    s.ApiOperation({
      summary: 'Per-deployment health',
      description:
        "Every deployment's own health check (keyed by its router id, e.g. `my-model#0`) with the router's view of it: " +
        'weight and priority (fallback tier, lower is preferred), requests outstanding, cooldown after failures, ' +
        'consecutive failures. 503 when a model has no healthy deployment.',
    }),
    s.ApiOkResponse({ description: 'Every model has a healthy deployment', schema: providersOkSchema }),
    s.ApiServiceUnavailableResponse({ description: 'A model has no healthy deployment', schema: providersDownSchema }),
  ])
  async providersHealth(@Res({ passthrough: true }) reply: FastifyReply): Promise<HealthCheckResult> {
    // A named key with a model list sees only those models' deployments.
    const models = reply.request.apiKey?.models;
    return this.run(reply, [() => this.providers.details(undefined, models)]);
  }

  /** Runs terminus checks; a failed check becomes a 503 with terminus's body (not the global error filter's). */
  private async run(reply: FastifyReply, checks: HealthIndicatorFunction[]): Promise<HealthCheckResult> {
    try {
      return await this.health.check(checks);
    } catch (error) {
      if (error instanceof ServiceUnavailableException) {
        reply.code(503);
        return error.getResponse() as HealthCheckResult;
      }
      throw error;
    }
  }

  private noteReadiness(ready: boolean, why: unknown): void {
    if (this.lastReady === ready) return;
    const first = this.lastReady === undefined;
    this.lastReady = ready;
    if (!ready) this.logger.warn({ msg: 'not ready', details: why });
    else if (!first) this.logger.log('ready again');
  }
}
