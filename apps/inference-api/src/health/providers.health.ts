import { Inject, Injectable, Optional } from '@nestjs/common';
import { type HealthIndicatorResult, HealthIndicatorService } from '@nestjs/terminus';
import type { Deployment, DeploymentStatus, ModelRouter } from '@infer/model-providers';
import type { AppConfig } from '../config/app-config.js';
import { APP_CONFIG } from '../config/config.tokens.js';
import { MODEL_ROUTER } from '../models/models.tokens.js';
import { errorMessage, withTimeout } from './timeout.js';

/**
 * Upper bound of one provider health() call, ms. Providers keep their own (shorter) probe timeout
 * and cache their result; this only guards against one that never answers.
 */
export const PROVIDER_HEALTH_TIMEOUT_MS = 3_000;

export interface DeploymentHealth {
  readonly id: string;
  readonly model: string;
  readonly kind: string;
  readonly label: string;
  readonly healthy: boolean;
  readonly detail?: string;
  readonly responseTime: number;
}

/**
 * Readiness of the model providers: every deployment's `provider.health()` (model loaded,
 * upstream reachable or recently healthy), each bounded by a timeout, in parallel.
 *
 * One key per deployment (its router id, e.g. `my-model#0`). A model is servable while at least
 * one of its deployments is healthy: an unhealthy deployment of a servable model is `degraded`
 * (the check stays 200: the router sends traffic to the healthy ones), and the deployments of a
 * model with no healthy deployment are `down` (503).
 */
@Injectable()
export class ProvidersHealthIndicator {
  /**
   * With API keys, readiness (open to anyone: balancers probe without a key) leaves out each
   * deployment's `label` and `detail`: they name upstream addresses. /health/providers (needs a key) has them.
   */
  private readonly redactReadiness: boolean;

  constructor(
    @Inject(MODEL_ROUTER) private readonly router: ModelRouter,
    private readonly indicators: HealthIndicatorService,
    @Optional() @Inject(APP_CONFIG) config?: AppConfig,
  ) {
    this.redactReadiness = (config?.apiKeys.length ?? 0) > 0;
  }

  /** Probes every deployment (in parallel, each bounded by `timeoutMs`). */
  async probe(timeoutMs = PROVIDER_HEALTH_TIMEOUT_MS): Promise<DeploymentHealth[]> {
    return Promise.all(this.router.deployments().map((d) => probeDeployment(d, timeoutMs)));
  }

  /** For /health/ready. */
  async readiness(timeoutMs?: number): Promise<HealthIndicatorResult> {
    return this.toResult(await this.probe(timeoutMs), false, this.redactReadiness);
  }

  /**
   * For /health/providers: the same verdicts plus the router's view (load, cooldown, failures).
   * `models`: only the deployments of these (a named API key's model list).
   */
  async details(timeoutMs?: number, models?: ReadonlySet<string>): Promise<HealthIndicatorResult> {
    const probes = await this.probe(timeoutMs);
    return this.toResult(models === undefined ? probes : probes.filter((p) => models.has(p.model)), true, false);
  }

  private toResult(probes: readonly DeploymentHealth[], withRouter: boolean, redact: boolean): HealthIndicatorResult {
    const servable = new Set(probes.filter((p) => p.healthy).map((p) => p.model));
    const routerStatus = new Map<string, DeploymentStatus>();
    if (withRouter) {
      for (const model of this.router.models()) for (const s of this.router.status(model)) routerStatus.set(s.id, s);
    }
    let result: HealthIndicatorResult = {};
    for (const p of probes) {
      const session = this.indicators.check(p.id);
      const router = routerStatus.get(p.id);
      const data = {
        model: p.model,
        kind: p.kind,
        ...(redact ? {} : { label: p.label }),
        healthy: p.healthy,
        ...(p.detail === undefined || redact ? {} : { detail: p.detail }),
        responseTime: p.responseTime,
        ...(router === undefined
          ? {}
          : {
              router: {
                weight: router.weight,
                priority: router.priority,
                outstanding: router.outstanding,
                coolingDownForMs: router.coolingDownForMs,
                consecutiveFailures: router.consecutiveFailures,
              },
            }),
      };
      const verdict = p.healthy ? session.up(data) : servable.has(p.model) ? session.degraded(data) : session.down(data);
      result = { ...result, ...verdict };
    }
    return result;
  }
}

async function probeDeployment(deployment: Deployment, timeoutMs: number): Promise<DeploymentHealth> {
  const { provider } = deployment;
  const base = { id: deployment.id, model: deployment.modelName, kind: provider.kind, label: provider.label };
  const started = performance.now();
  try {
    const health = await withTimeout(() => provider.health(), timeoutMs, 'provider health check');
    return {
      ...base,
      healthy: health.healthy,
      ...(health.detail === undefined ? {} : { detail: health.detail }),
      responseTime: Math.round(performance.now() - started),
    };
  } catch (error) {
    return { ...base, healthy: false, detail: errorMessage(error), responseTime: Math.round(performance.now() - started) };
  }
}
