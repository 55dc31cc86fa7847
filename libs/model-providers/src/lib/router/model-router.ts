import { isAbortError, ModelProviderError } from '../contract/errors.js';
import type { ModelProvider, StreamPart } from '../contract/model-provider.js';

/** One deployment of a public model: a provider instance plus the router's bookkeeping. */
export interface Deployment {
  /** Stable id for logs and health output, e.g. `my-model#0`. */
  readonly id: string;
  readonly modelName: string;
  readonly provider: ModelProvider;
  readonly weight: number;
  /**
   * Fallback tier: lower is preferred (default 0). A deployment is used only while every deployment
   * of a better tier is cooling down or already failed this request.
   */
  readonly priority?: number;
}

export interface RouterOptions {
  /** How long a deployment that failed with a retryable error is avoided. Default 10 s. */
  readonly cooldownMs?: number;
  /** Upper bound of deployments tried for one request. Default 3. */
  readonly maxAttempts?: number;
  /** Clock, injectable for tests. */
  readonly now?: () => number;
  /** Called whenever a deployment fails (for logs/metrics). */
  readonly onDeploymentFailure?: (deployment: Deployment, error: unknown, willRetry: boolean) => void;
}

interface DeploymentState {
  readonly deployment: Deployment;
  /** `deployment.priority ?? 0`, resolved once. */
  readonly priority: number;
  outstanding: number;
  cooldownUntil: number;
  failures: number;
}

export interface DeploymentStatus {
  readonly id: string;
  readonly label: string;
  readonly weight: number;
  readonly priority: number;
  readonly outstanding: number;
  readonly coolingDownForMs: number;
  readonly consecutiveFailures: number;
}

/**
 * Chooses a deployment per request: among the deployments not in cooldown, those of the best
 * (lowest) priority tier, and among them the least outstanding requests relative to weight. A
 * worse tier gets traffic only while every deployment of the better tiers is cooling down (or
 * already failed this request); when all are cooling down, the one whose cooldown ends first (the
 * better tier among equals). Retries a retryable failure on another deployment (the same tier
 * first, then the next), at most `maxAttempts` in all, but only before anything was produced: for
 * a stream that is before its first part, so no byte has reached the client.
 */
export class ModelRouter {
  private readonly states = new Map<string, DeploymentState[]>();
  private readonly rotation = new Map<string, number>();
  private readonly cooldownMs: number;
  private readonly maxAttempts: number;
  private readonly now: () => number;
  private readonly onDeploymentFailure: RouterOptions['onDeploymentFailure'];

  constructor(deployments: Iterable<Deployment>, options: RouterOptions = {}) {
    this.cooldownMs = options.cooldownMs ?? 10_000;
    this.maxAttempts = Math.max(1, options.maxAttempts ?? 3);
    this.now = options.now ?? Date.now;
    this.onDeploymentFailure = options.onDeploymentFailure;
    for (const deployment of deployments) {
      if (!(deployment.weight > 0)) throw new RangeError(`Deployment ${deployment.id}: weight must be > 0`);
      const priority = deployment.priority ?? 0;
      if (!(Number.isInteger(priority) && priority >= 0)) {
        throw new RangeError(`Deployment ${deployment.id}: priority must be an integer >= 0`);
      }
      let list = this.states.get(deployment.modelName);
      if (!list) this.states.set(deployment.modelName, (list = []));
      list.push({ deployment, priority, outstanding: 0, cooldownUntil: 0, failures: 0 });
    }
  }

  has(modelName: string): boolean {
    return this.states.has(modelName);
  }

  models(): string[] {
    return [...this.states.keys()];
  }

  deployments(modelName?: string): Deployment[] {
    const lists = modelName === undefined ? [...this.states.values()] : [this.states.get(modelName) ?? []];
    return lists.flat().map((s) => s.deployment);
  }

  /** The first deployment's provider of a model (capabilities are the same for all deployments in practice). */
  capabilitiesOf(modelName: string): ModelProvider['capabilities'] | undefined {
    return this.states.get(modelName)?.[0]?.deployment.provider.capabilities;
  }

  status(modelName: string): DeploymentStatus[] {
    const now = this.now();
    return (this.states.get(modelName) ?? []).map((s) => ({
      id: s.deployment.id,
      label: s.deployment.provider.label,
      weight: s.deployment.weight,
      priority: s.priority,
      outstanding: s.outstanding,
      coolingDownForMs: Math.max(0, s.cooldownUntil - now),
      consecutiveFailures: s.failures,
    }));
  }

  /** Runs a one-shot call (non-streaming) with retries on other deployments. */
  async run<T>(modelName: string, call: (provider: ModelProvider) => Promise<T>, signal?: AbortSignal): Promise<T> {
    const tried = new Set<DeploymentState>();
    for (;;) {
      const state = this.pick(modelName, tried);
      tried.add(state);
      state.outstanding++;
      try {
        const result = await call(state.deployment.provider);
        this.recordSuccess(state);
        return result;
      } catch (error) {
        if (!this.shouldRetry(state, error, tried, modelName, signal)) throw error;
      } finally {
        state.outstanding--;
      }
    }
  }

  /**
   * Streams from one deployment; if opening the stream or producing its first part fails with a
   * retryable error, another deployment is tried. Errors after the first part propagate.
   */
  async *stream(
    modelName: string,
    open: (provider: ModelProvider) => AsyncIterable<StreamPart>,
    signal?: AbortSignal,
  ): AsyncGenerator<StreamPart, void, undefined> {
    const tried = new Set<DeploymentState>();
    for (;;) {
      const state = this.pick(modelName, tried);
      tried.add(state);
      state.outstanding++;
      let iterator: AsyncIterator<StreamPart> | undefined;
      let first: IteratorResult<StreamPart>;
      try {
        iterator = open(state.deployment.provider)[Symbol.asyncIterator]();
        first = await iterator.next();
      } catch (error) {
        state.outstanding--;
        if (this.shouldRetry(state, error, tried, modelName, signal)) continue;
        throw error;
      }
      try {
        if (first.done) return;
        yield first.value;
        for (;;) {
          const next = await iterator.next();
          if (next.done) break;
          yield next.value;
        }
        this.recordSuccess(state);
        return;
      } catch (error) {
        this.recordFailure(state, error);
        throw error;
      } finally {
        state.outstanding--;
        // The consumer stopped early (client gone): let the provider release its resources.
        await iterator.return?.().catch(() => undefined);
      }
    }
  }

  private pick(modelName: string, exclude: ReadonlySet<DeploymentState>): DeploymentState {
    const list = this.states.get(modelName);
    if (!list || list.length === 0) {
      throw new ModelProviderError(`The model '${modelName}' does not exist`, { code: 'invalid_request', param: 'model' });
    }
    const now = this.now();
    const start = (this.rotation.get(modelName) ?? 0) % list.length;
    this.rotation.set(modelName, start + 1);
    let best: DeploymentState | undefined;
    let bestPriority = Infinity;
    let bestScore = Infinity;
    // When every candidate is cooling down: the one whose cooldown ends first.
    let soonest: DeploymentState | undefined;
    for (let i = 0; i < list.length; i++) {
      const s = list[(start + i) % list.length];
      if (!s || exclude.has(s)) continue;
      if (s.cooldownUntil > now) {
        if (
          !soonest ||
          s.cooldownUntil < soonest.cooldownUntil ||
          (s.cooldownUntil === soonest.cooldownUntil && s.priority < soonest.priority)
        ) {
          soonest = s;
        }
        continue;
      }
      // One tier (the usual case): this comparison is all fallback tiers cost per candidate.
      if (s.priority !== bestPriority) {
        if (s.priority > bestPriority) continue;
        // A better tier than any seen so far: worse tiers' candidates no longer count.
        bestPriority = s.priority;
        bestScore = Infinity;
      }
      const score = (s.outstanding + 1) / s.deployment.weight;
      if (score < bestScore) {
        best = s;
        bestScore = score;
      }
    }
    const chosen = best ?? soonest;
    if (!chosen) {
      throw new ModelProviderError(`No deployment of '${modelName}' is available`, { code: 'no_deployment_available' });
    }
    return chosen;
  }

  private shouldRetry(
    state: DeploymentState,
    error: unknown,
    tried: ReadonlySet<DeploymentState>,
    modelName: string,
    signal: AbortSignal | undefined,
  ): boolean {
    if (signal?.aborted || isAbortError(error)) return false;
    const retryable = error instanceof ModelProviderError && error.isRetryable;
    const more = tried.size < Math.min(this.maxAttempts, this.states.get(modelName)?.length ?? 0);
    this.recordFailure(state, error, retryable && more);
    return retryable && more;
  }

  private recordFailure(state: DeploymentState, error: unknown, willRetry = false): void {
    if (isAbortError(error)) return;
    if (error instanceof ModelProviderError && error.isRetryable) {
      state.failures++;
      state.cooldownUntil = this.now() + this.cooldownMs;
    }
    this.onDeploymentFailure?.(state.deployment, error, willRetry);
  }

  private recordSuccess(state: DeploymentState): void {
    state.failures = 0;
    state.cooldownUntil = 0;
  }
}
