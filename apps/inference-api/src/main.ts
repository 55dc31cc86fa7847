// First: V8 flags that must be set before the app allocates (see v8-tuning.ts).
import './v8-tuning.js';
import 'reflect-metadata';
import { createApp, createRootLogger } from './bootstrap.js';
import { ConfigValidationError, loadAppConfig } from './config/app-config.js';
import { preflight } from './config/preflight.js';
import { installGracefulShutdown } from './health/graceful-shutdown.js';

/** Errors of listen() that are about HOST or PORT, not a bug: one line, no stack. */
const LISTEN_ERRORS = new Set(['EADDRINUSE', 'EACCES', 'EADDRNOTAVAIL', 'ENOTFOUND', 'EAI_AGAIN', 'EAI_NONAME']);

/** `--check-config`: validate the environment, the models file and API_KEYS_FILE, print one line, exit (0: fine). */
const checkOnly = process.argv.includes('--check-config');

async function main(): Promise<void> {
  let config;
  try {
    config = loadAppConfig();
    // The models file and the keys' model lists, before Nest starts (a bad file: one line, not a stack trace).
    const summary = await preflight(config);
    if (checkOnly) {
      process.stdout.write(`configuration OK: ${summary.models} model(s), ${summary.deployments} deployment(s)\n`);
      process.exit(0);
    }
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
    try {
      await app.listen({ port: config.port, host: config.host });
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      if (code === undefined || !LISTEN_ERRORS.has(code)) throw error;
      process.stderr.write(`Cannot listen on ${config.host}:${config.port} (HOST, PORT): ${code}${code === 'EADDRINUSE' ? ', the port is in use' : ''}\n`);
      process.exit(1);
    }
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
