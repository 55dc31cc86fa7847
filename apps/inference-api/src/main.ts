// First: V8 flags that must be set before the app allocates (see v8-tuning.ts).
import './v8-tuning.js';
import 'reflect-metadata';
import { createApp, createRootLogger } from './bootstrap.js';
import { ConfigValidationError, loadAppConfig } from './config/app-config.js';
import { installGracefulShutdown } from './health/graceful-shutdown.js';

async function main(): Promise<void> {
  let config;
  try {
    config = loadAppConfig();
  } catch (error) {
    if (error instanceof ConfigValidationError) {
      process.stderr.write(`${error.message}\n`);
      process.exit(1);
    }
    throw error;
  }
  const logger = createRootLogger(config);
  try {
    const app = await createApp(config, logger);
    await app.listen({ port: config.port, host: config.host });
    const address = app.getHttpServer().address();
    const port = typeof address === 'object' && address ? address.port : config.port;
    logger.info({ port, host: config.host, docs: `/docs` }, `inference-api listening on http://${config.host}:${port}`);
    // SIGTERM/SIGINT: readiness 503, stop accepting, drain requests and streams up to SHUTDOWN_TIMEOUT_MS, close, exit.
    installGracefulShutdown(app, { timeoutMs: config.shutdownTimeoutMs, logger });
    // PM2 wait_ready: we are serving.
    process.send?.('ready');
  } catch (error) {
    // A configuration that only the built app can check (e.g. API_KEYS_FILE against the models): as above.
    if (error instanceof ConfigValidationError) {
      process.stderr.write(`${error.message}\n`);
      process.exit(1);
    }
    logger.fatal({ err: error }, `inference-api failed to start: ${error instanceof Error ? error.message : String(error)}`);
    process.exit(1);
  }
}

void main();
