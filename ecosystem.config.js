// PM2 configuration: `pm2 start ecosystem.config.js` (after `npm ci && npm run build`).
//
// This file is an ES module (the root package.json has "type": "module"). PM2 loads config files
// with require(), which on Node >= 20.19 loads ES modules too; it reads the `apps` export.
//
// Two apps:
// - inference-api: the gateway, in cluster mode (PM2_INSTANCES workers, default: all cores) on
//   one port. Zero-downtime `pm2 reload inference-api`: each new worker must send 'ready'
//   (main.ts does, after listen) before the old one gets SIGINT and drains (health/graceful-shutdown.ts).
// - model-node: one fork-mode process serving a GGUF with the in-process llama.cpp provider on
//   MODEL_NODE_PORT, through the same OpenAI-compatible API. The gateway's default models file
//   (deploy/pm2/gateway.models.yaml) uses it as an `openai-compatible` upstream.
//
// Everything is overridable from the environment of the `pm2 start` command, e.g.
//   PORT=8000 PM2_INSTANCES=4 REDIS_URL=redis://127.0.0.1:6379 pm2 start ecosystem.config.js --only inference-api
// See deploy/README.md.
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { basename, dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = dirname(fileURLToPath(import.meta.url));
// An empty variable counts as unset (as in the app): `HOST= pm2 start …` keeps the default.
const env = Object.fromEntries(Object.entries(process.env).filter(([, value]) => value !== ''));

/**
 * The V8 flags the API is meant to run with, from apps/inference-api/package.json (`nodeArgs`, the
 * one list that `npm start`, the bench and the e2e tests use too). A 4 MB young generation instead
 * of V8's 16 MB: the request path allocates a lot of short-lived objects, and a nursery that stays
 * in the CPU caches made one worker 7-13% faster on cache misses and 12-19% on hits (README,
 * Performance) and saves 24 MB of RSS. One V8 helper thread instead of four (`--v8-pool-size=1`):
 * with a worker per core (instances: max) the helpers only contend with the workers; 4-6% faster
 * on misses, 14-19% on hits, 4-8 MB less RSS per worker.
 */
const apiNodeArgs = JSON.parse(readFileSync(resolve(root, 'apps/inference-api/package.json'), 'utf8')).nodeArgs;

/** Drain deadline of the API (SHUTDOWN_TIMEOUT_MS, same default as the app). */
const shutdownTimeoutMs = Number(env.SHUTDOWN_TIMEOUT_MS ?? 10_000);
/**
 * PM2 sends SIGKILL this long after SIGINT. It must exceed the whole shutdown: the drain deadline,
 * plus up to 5 s for closing providers and clients (DEFAULT_CLOSE_TIMEOUT_MS), plus a margin.
 */
const killTimeoutMs = shutdownTimeoutMs + 8_000;

/** Variables passed to the app when set in the environment of `pm2 start`. */
const PASSED = [
  'HOST', 'MODELS_DIR', 'DEFAULT_MODEL_THREADS', 'PREDICT_MODEL', 'PREDICT_MAX_TOKENS', 'LOG_LEVEL', 'LOG_REQUESTS',
  'BODY_LIMIT_BYTES', 'TRUST_PROXY', 'REDIS_URL', 'REDIS_TIMEOUT_MS', 'REDIS_REQUIRED', 'CACHE_ENABLED',
  'CACHE_TTL_SECONDS', 'CACHE_MAX_TTL_SECONDS', 'CACHE_MAX_ENTRIES', 'CACHE_MAX_BYTES', 'CACHE_NONDETERMINISTIC', 'CACHE_NAMESPACE',
  'CACHE_NAMESPACE_HEADER', 'COALESCE_WAIT_MS', 'CACHE_EMBEDDINGS', 'CACHE_EMBEDDINGS_MAX_BYTES', 'API_KEYS', 'API_KEYS_FILE', 'METRICS_PORT', 'METRICS_HOST',
  'CORS_ORIGINS', 'RATE_LIMIT_RPM', 'RESPONSES_STORE_ENABLED', 'RESPONSES_STORE_TTL_SECONDS', 'RESPONSES_STORE_MAX_ENTRIES',
  'RESPONSES_STORE_MAX_BYTES', 'RESPONSES_BACKGROUND_LEASE_SECONDS',
];
const passed = Object.fromEntries(PASSED.filter((k) => env[k] !== undefined).map((k) => [k, env[k]]));

/**
 * What the model node gets whatever the environment says: it is internal to the host (the
 * gateway's upstream on loopback), so the client-facing features stay at the gateway. Also used by
 * tools/stack for its procs mode.
 */
export const modelNodeOverrides = {
  // Caching happens in the gateway; the model node has no Redis and no cache of its own.
  CACHE_ENABLED: 'false',
  REDIS_URL: '',
  // The gateway serves /v1/responses (as chat jobs to this node) and stores the responses.
  RESPONSES_STORE_ENABLED: 'false',
  // Clients authenticate at the gateway; the model node listens on loopback for the gateway only.
  API_KEYS: '',
  API_KEYS_FILE: '',
  // Clients are rate-limited at the gateway; here every request would come from one client (the gateway).
  RATE_LIMIT_RPM: '0',
};

const common = {
  cwd: root,
  script: resolve(root, 'apps/inference-api/dist/main.js'),
  node_args: [...apiNodeArgs, '--enable-source-maps'],
  // Zero-downtime: a new worker counts as started only once it sent 'ready' (after listen).
  wait_ready: true,
  // Stop gracefully (SIGINT, handled like SIGTERM by the app), SIGKILL only after the drain.
  kill_timeout: killTimeoutMs,
  autorestart: true,
  min_uptime: 5_000,
  max_restarts: 10,
  exp_backoff_restart_delay: 200,
  merge_logs: true,
};

export const apps = [
  {
    ...common,
    name: 'inference-api',
    exec_mode: 'cluster',
    // A number, or 'max' for one worker per core.
    instances: env.PM2_INSTANCES && env.PM2_INSTANCES !== 'max' ? Number(env.PM2_INSTANCES) : 'max',
    // Longest wait for 'ready' (Nest boot + model/provider init). During `pm2 reload`, the old
    // worker is stopped after this even if its replacement never became ready.
    listen_timeout: Number(env.PM2_LISTEN_TIMEOUT_MS ?? 30_000),
    env: {
      NODE_ENV: 'production',
      ...passed,
      PORT: env.PORT ?? '3000',
      HOST: env.HOST ?? '127.0.0.1',
      SHUTDOWN_TIMEOUT_MS: String(shutdownTimeoutMs),
      MODELS_FILE: env.MODELS_FILE ?? resolve(root, 'deploy/pm2/gateway.models.yaml'),
    },
  },
  {
    ...common,
    name: 'model-node',
    exec_mode: 'fork',
    instances: 1,
    // Loading a large GGUF takes a while.
    listen_timeout: Number(env.MODEL_NODE_LISTEN_TIMEOUT_MS ?? 120_000),
    env: {
      NODE_ENV: 'production',
      ...passed,
      PORT: env.MODEL_NODE_PORT ?? '8100',
      HOST: env.MODEL_NODE_HOST ?? '127.0.0.1',
      SHUTDOWN_TIMEOUT_MS: String(shutdownTimeoutMs),
      MODELS_FILE: env.MODEL_NODE_MODELS_FILE ?? resolve(root, 'deploy/pm2/model-node.models.yaml'),
      ...modelNodeOverrides,
      INSTANCE_ID: 'model-node',
      // Its metrics, if wanted, on a port of its own (the gateway's workers use METRICS_PORT + 0, 1, ...).
      METRICS_PORT: env.MODEL_NODE_METRICS_PORT ?? '',
    },
  },
];

/**
 * Before PM2 starts or reloads anything (`pm2 start|reload|restart ecosystem.config.js`), each app's
 * configuration is checked with `main.js --check-config` (the environment, the models file,
 * API_KEYS_FILE): a bad value stops the command here, with the app's message, instead of new workers
 * failing to boot while PM2 stops the old ones after listen_timeout. Only when the PM2 CLI loads this
 * file, and only once the app is built. It sees the environment of the command: a variable PM2 kept
 * from an earlier `pm2 start` and the command does not set is not checked (see deploy/README.md).
 */
function checkConfig() {
  const main = resolve(root, 'apps/inference-api/dist/main.js');
  if (!existsSync(main)) return;
  const at = process.argv.findIndex((arg) => arg === '--only' || arg.startsWith('--only='));
  const only = at < 0 ? undefined : (process.argv[at].includes('=') ? process.argv[at].slice('--only='.length) : process.argv[at + 1] ?? '').split(',');
  for (const app of apps) {
    if (only !== undefined && !only.includes(app.name)) continue;
    const result = spawnSync(process.execPath, [main, '--check-config'], {
      cwd: root,
      env: { ...process.env, ...app.env },
      encoding: 'utf8',
      timeout: 60_000,
    });
    if (result.status !== 0) {
      const said = (result.stderr || result.stdout || String(result.error ?? result.signal)).trim();
      const error = new Error(`${app.name}: ${said}\n(nothing was started or reloaded: fix the configuration and run the command again)`);
      // PM2 prints the stack of what the file throws: the message is all there is to say.
      error.stack = error.message;
      throw error;
    }
  }
}
/** The PM2 commands that start workers (not stop, delete, ls, ...: those work whatever the configuration). */
const STARTING = new Set(['start', 'restart', 'reload', 'gracefulReload', 'startOrRestart', 'startOrReload', 'startOrGracefulReload']);
if (basename(process.argv[1] ?? '') === 'pm2' && process.argv.some((arg) => STARTING.has(arg)) && process.env.INFER_SKIP_CONFIG_CHECK !== '1') checkConfig();

export default { apps };
