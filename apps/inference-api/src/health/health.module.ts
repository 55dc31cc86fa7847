import { Module } from '@nestjs/common';
import { TerminusModule } from '@nestjs/terminus';
import { AppLifecycle } from './app-lifecycle.js';
import { HealthController } from './health.controller.js';
import { ProvidersHealthIndicator } from './providers.health.js';
import { RedisHealthIndicator } from './redis.health.js';

/**
 * `/health/live`, `/health/ready`, `/health/providers`, and the process lifecycle that
 * GracefulShutdown (main.ts) drives. Terminus's own logger is off: failing probes would log an
 * error on every probe; the controller logs readiness transitions instead.
 */
@Module({
  imports: [TerminusModule.forRoot({ logger: false })],
  controllers: [HealthController],
  providers: [AppLifecycle, ProvidersHealthIndicator, RedisHealthIndicator],
  exports: [AppLifecycle],
})
export class HealthModule {}
