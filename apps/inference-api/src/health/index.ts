export { AppLifecycle, type LifecyclePhase, type LifecycleSnapshot } from './app-lifecycle.js';
export { GracefulShutdown, installGracefulShutdown, DEFAULT_CLOSE_TIMEOUT_MS } from './graceful-shutdown.js';
export type { GracefulShutdownOptions, ShutdownLogger } from './graceful-shutdown.js';
export { HealthModule } from './health.module.js';
export { REDIS_PING, type RedisPing } from './health.tokens.js';
