#!/usr/bin/env node
// The local stack: Redis, N API instances and NGINX in front, on configurable loopback ports.
//
//   npm run stack:up -- [options]      (node tools/stack/stack.mjs up [options])
//   npm run stack:status
//   npm run stack:down
//
// Modes:
//   --mode pm2    (default) `pm2 start ecosystem.config.js`: the API in cluster mode on one port
//                 (--instances workers), NGINX with that one upstream server. PM2_HOME is the
//                 stack's own folder: `PM2_HOME=<dir>/pm2 npx pm2 ls|logs|reload inference-api`.
//   --mode procs  N separate API processes on consecutive ports (--api-port, +1, ...), NGINX
//                 balancing over them: what several hosts look like, on one machine.
//
// Models: --models-file <yaml> for every API instance; without it the stack also starts a model
// node (llama.cpp, deploy/pm2/model-node.models.yaml) on --model-node-port and the API instances
// use it as an OpenAI-compatible upstream.
//
// Everything the stack starts keeps running after `up` returns (daemons, detached processes);
// its state, logs and configs live in --dir (default tmp/stack). Requires the build (npm run build).
import { spawn, spawnSync } from 'node:child_process';
import { closeSync, existsSync, openSync, readFileSync } from 'node:fs';
import { mkdir, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { createConnection, createServer } from 'node:net';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { modelNodeOverrides } from '../../ecosystem.config.js';
import { nginxBinary, prepareNginx, repoRoot } from './nginx.mjs';

const USAGE = `Usage: node tools/stack/stack.mjs <up|down|status> [options]
  --dir <path>              state, logs and configs (default tmp/stack; env STACK_DIR)
  --mode <pm2|procs>        API instances under PM2 cluster mode, or as plain processes (default pm2; env STACK_MODE)
  --instances <n>           API instances/workers (default: pm2 PM2_INSTANCES or 2, procs 3; env STACK_INSTANCES)
  --host <addr>             interface of every service (default 127.0.0.1)
  --nginx-port <port>       NGINX (default 8080; env STACK_NGINX_PORT)
  --api-port <port>         API port (pm2), first API port (procs) (default 3000; env STACK_API_PORT)
  --redis-port <port>       Redis (default 6379; env STACK_REDIS_PORT)
  --no-redis                no Redis (in-memory cache per instance)
  --model-node-port <port>  model node, when no --models-file (default 8100; env STACK_MODEL_NODE_PORT)
  --models-file <path>      models file for the API instances (env MODELS_FILE); no model node then
  --shutdown-timeout-ms <n> drain deadline of the API instances (default 10000; env SHUTDOWN_TIMEOUT_MS)
  --log-level <level>       API log level (default info; env LOG_LEVEL)
  --ready-timeout-ms <n>    how long 'up' waits for the stack to answer (default 60000)
`;

const API_MAIN = join(repoRoot, 'apps/inference-api/dist/main.js');
/** The API's V8 flags (`nodeArgs` in its package.json), passed by every launcher. */
const API_NODE_ARGS = JSON.parse(readFileSync(join(repoRoot, 'apps/inference-api/package.json'), 'utf8')).nodeArgs;
const PM2_BIN = join(repoRoot, 'node_modules/pm2/bin/pm2');

function parse(argv) {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      dir: { type: 'string' },
      mode: { type: 'string' },
      instances: { type: 'string' },
      host: { type: 'string' },
      'nginx-port': { type: 'string' },
      'api-port': { type: 'string' },
      'redis-port': { type: 'string' },
      'no-redis': { type: 'boolean', default: false },
      'model-node-port': { type: 'string' },
      'models-file': { type: 'string' },
      'shutdown-timeout-ms': { type: 'string' },
      'log-level': { type: 'string' },
      'ready-timeout-ms': { type: 'string' },
      help: { type: 'boolean', default: false },
    },
  });
  const env = process.env;
  const int = (name, value, fallback) => {
    if (value === undefined || value === '') return fallback;
    const n = Number(value);
    if (!Number.isInteger(n) || n < 0) throw new Error(`--${name} must be a non-negative integer, got "${value}"`);
    return n;
  };
  const mode = values.mode ?? env.STACK_MODE ?? 'pm2';
  if (mode !== 'pm2' && mode !== 'procs') throw new Error(`--mode must be pm2 or procs, got "${mode}"`);
  const pm2Instances = env.PM2_INSTANCES && env.PM2_INSTANCES !== 'max' ? env.PM2_INSTANCES : undefined;
  return {
    command: positionals[0],
    help: values.help,
    dir: resolve(repoRoot, values.dir ?? env.STACK_DIR ?? 'tmp/stack'),
    mode,
    instances: int('instances', values.instances ?? env.STACK_INSTANCES ?? (mode === 'pm2' ? pm2Instances : undefined), mode === 'pm2' ? 2 : 3),
    host: values.host ?? '127.0.0.1',
    nginxPort: int('nginx-port', values['nginx-port'] ?? env.STACK_NGINX_PORT, 8080),
    apiPort: int('api-port', values['api-port'] ?? env.STACK_API_PORT, 3000),
    redisPort: values['no-redis'] ? undefined : int('redis-port', values['redis-port'] ?? env.STACK_REDIS_PORT, 6379),
    modelNodePort: int('model-node-port', values['model-node-port'] ?? env.STACK_MODEL_NODE_PORT, 8100),
    modelsFile: values['models-file'] ?? env.MODELS_FILE,
    shutdownTimeoutMs: int('shutdown-timeout-ms', values['shutdown-timeout-ms'] ?? env.SHUTDOWN_TIMEOUT_MS, 10_000),
    logLevel: values['log-level'] ?? env.LOG_LEVEL ?? 'info',
    readyTimeoutMs: int('ready-timeout-ms', values['ready-timeout-ms'], 60_000),
  };
}

const log = (msg) => process.stdout.write(`stack: ${msg}\n`);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

function portFree(port, host) {
  return new Promise((resolve) => {
    const server = createServer();
    server.once('error', () => resolve(false));
    server.listen(port, host, () => server.close(() => resolve(true)));
  });
}

function redisPing(port, host) {
  return new Promise((resolve) => {
    const socket = createConnection({ port, host });
    let data = '';
    socket.setTimeout(1_000, () => socket.destroy());
    socket.on('connect', () => socket.write('*1\r\n$4\r\nPING\r\n'));
    socket.on('data', (d) => {
      data += d;
      socket.end();
    });
    socket.on('close', () => resolve(data.startsWith('+PONG')));
    socket.on('error', () => resolve(false));
  });
}

async function httpStatus(url) {
  try {
    const res = await fetch(url, { signal: AbortSignal.timeout(3_000) });
    await res.arrayBuffer();
    return res.status;
  } catch {
    return 0;
  }
}

async function waitFor(what, check, timeoutMs) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await check()) return;
    if (Date.now() > deadline) throw new Error(`${what} did not come up within ${timeoutMs} ms`);
    await sleep(100);
  }
}

function alive(pid) {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

async function stopPid(pid, signal, timeoutMs, what) {
  if (!pid || !alive(pid)) return;
  process.kill(pid, signal);
  const deadline = Date.now() + timeoutMs;
  while (alive(pid) && Date.now() < deadline) await sleep(100);
  if (alive(pid)) {
    log(`${what} (pid ${pid}) still running after ${timeoutMs} ms: SIGKILL`);
    process.kill(pid, 'SIGKILL');
  }
}

function pm2(args, env) {
  const result = spawnSync(process.execPath, [PM2_BIN, ...args], { cwd: repoRoot, env, encoding: 'utf8' });
  if (result.status !== 0) throw new Error(`pm2 ${args.join(' ')} failed:\n${result.stdout}\n${result.stderr}`);
  return result.stdout;
}

async function readState(dir) {
  try {
    return JSON.parse(await readFile(join(dir, 'stack.json'), 'utf8'));
  } catch {
    return undefined;
  }
}

async function up(o) {
  if (!existsSync(API_MAIN)) throw new Error(`${API_MAIN} is missing: build first (npm run build)`);
  const apiPorts = o.mode === 'pm2' ? [o.apiPort] : Array.from({ length: o.instances }, (_, i) => o.apiPort + i);
  const withModelNode = !o.modelsFile;
  const ports = [
    ['nginx', o.nginxPort],
    ...apiPorts.map((p) => ['api', p]),
    ...(o.redisPort === undefined ? [] : [['redis', o.redisPort]]),
    ...(withModelNode ? [['model node', o.modelNodePort]] : []),
  ];
  for (const [what, port] of ports) {
    if (!(await portFree(port, o.host))) throw new Error(`port ${port} (${what}) is in use: choose another one (see --help)`);
  }
  await clearStackDir(o.dir);
  const logs = join(o.dir, 'logs');
  await mkdir(logs, { recursive: true });
  const state = { mode: o.mode, host: o.host, dir: o.dir, shutdownTimeoutMs: o.shutdownTimeoutMs, pids: {}, ports: {} };
  const save = () => writeFile(join(o.dir, 'stack.json'), `${JSON.stringify(state, null, 2)}\n`);
  await save();

  // Redis
  let redisUrl;
  if (o.redisPort !== undefined) {
    const redisDir = join(o.dir, 'redis');
    await mkdir(redisDir, { recursive: true });
    const pidFile = join(redisDir, 'redis.pid');
    const r = spawnSync('redis-server', [
      '--port', String(o.redisPort), '--bind', o.host, '--save', '', '--appendonly', 'no', '--daemonize', 'yes',
      '--pidfile', pidFile, '--dir', redisDir, '--logfile', join(logs, 'redis.log'),
    ], { encoding: 'utf8' });
    if (r.error || r.status !== 0) throw new Error(`redis-server failed to start: ${r.error?.message ?? r.stderr}`);
    await waitFor('redis', () => redisPing(o.redisPort, o.host), 10_000);
    state.pids.redis = Number((await readFile(pidFile, 'utf8')).trim());
    state.ports.redis = o.redisPort;
    await save();
    redisUrl = `redis://${o.host}:${o.redisPort}`;
    log(`redis on ${redisUrl}`);
  }

  // Models
  let modelsFile = o.modelsFile ? resolve(o.modelsFile) : undefined;
  if (withModelNode) {
    modelsFile = join(o.dir, 'gateway.models.yaml');
    await writeFile(
      modelsFile,
      `# Written by tools/stack: the API instances use the stack's model node.\nmodels:\n  - name: tiny-llama\n    deployments:\n` +
        `      - provider: openai-compatible\n        baseUrl: http://${o.host}:${o.modelNodePort}/v1\n        model: tiny-llama\n`,
    );
  }
  const apiEnv = {
    ...process.env,
    HOST: o.host,
    MODELS_FILE: modelsFile,
    SHUTDOWN_TIMEOUT_MS: String(o.shutdownTimeoutMs),
    LOG_LEVEL: o.logLevel,
    ...(redisUrl ? { REDIS_URL: redisUrl } : { REDIS_URL: '' }),
  };

  // API instances (and the model node)
  if (o.mode === 'pm2') {
    const env = {
      ...apiEnv,
      PM2_HOME: join(o.dir, 'pm2'),
      PORT: String(o.apiPort),
      PM2_INSTANCES: String(o.instances),
      MODEL_NODE_PORT: String(o.modelNodePort),
      MODEL_NODE_HOST: o.host,
    };
    state.pm2Home = env.PM2_HOME;
    await save();
    log(`pm2 start ecosystem.config.js${withModelNode ? '' : ' --only inference-api'} (PM2_HOME=${env.PM2_HOME})`);
    pm2(['start', 'ecosystem.config.js', ...(withModelNode ? [] : ['--only', 'inference-api'])], env);
  } else {
    const start = (name, port, extra) => {
      const out = openSync(join(logs, `${name}.log`), 'a');
      const child = spawn(process.execPath, ['--enable-source-maps', ...API_NODE_ARGS, API_MAIN], {
        cwd: repoRoot,
        env: { ...apiEnv, PORT: String(port), INSTANCE_ID: name, ...extra },
        stdio: ['ignore', out, out],
        detached: true,
      });
      closeSync(out);
      child.unref();
      state.pids[name] = child.pid;
      return child.pid;
    };
    if (withModelNode) {
      // As PM2 starts it (ecosystem.config.js): no keys, rate limit, cache or store of its own.
      start('model-node', o.modelNodePort, {
        MODELS_FILE: join(repoRoot, 'deploy/pm2/model-node.models.yaml'),
        ...modelNodeOverrides,
        METRICS_PORT: '',
      });
    }
    apiPorts.forEach((port, i) => start(`api-${i + 1}`, port, {}));
    await save();
  }
  if (withModelNode) {
    await waitFor('model node', async () => (await httpStatus(`http://${o.host}:${o.modelNodePort}/health/live`)) === 200, o.readyTimeoutMs);
    state.ports.modelNode = o.modelNodePort;
    log(`model node on http://${o.host}:${o.modelNodePort}`);
  }
  for (const port of apiPorts) {
    await waitFor(`API on port ${port}`, async () => (await httpStatus(`http://${o.host}:${port}/health/live`)) === 200, o.readyTimeoutMs);
  }
  state.ports.api = apiPorts;
  await save();
  log(`API: ${o.mode === 'pm2' ? `${o.instances} PM2 cluster workers on port ${o.apiPort}` : `${o.instances} processes on ports ${apiPorts.join(', ')}`}`);

  // NGINX
  const nginx = await prepareNginx({ prefix: join(o.dir, 'nginx'), listen: `${o.host}:${o.nginxPort}`, servers: apiPorts.map((p) => `${o.host}:${p}`) });
  const r = spawnSync(nginxBinary(), nginx.args, { encoding: 'utf8' });
  if (r.error || r.status !== 0) throw new Error(`nginx failed to start: ${r.error?.message ?? r.stderr}`);
  state.nginx = { prefix: nginx.prefix, conf: nginx.conf, pidFile: nginx.pidFile };
  state.ports.nginx = o.nginxPort;
  await save();
  const url = `http://${o.host}:${o.nginxPort}`;
  await waitFor('nginx', async () => (await httpStatus(`${url}/nginx-health`)) === 200, 10_000);
  log(`nginx on ${url} (config ${nginx.conf})`);

  let ready = 0;
  const deadline = Date.now() + o.readyTimeoutMs;
  while ((ready = await httpStatus(`${url}/health/ready`)) !== 200 && Date.now() < deadline) await sleep(250);
  if (ready === 200) log(`up: ${url} (GET /health/ready 200, docs at ${url}/docs)`);
  else log(`up, but GET ${url}/health/ready answers ${ready || 'nothing'}: see ${logs}`);
}

/** What the stack writes in its directory: only a directory holding nothing else is cleared. */
const STACK_ENTRIES = new Set(['logs', 'nginx', 'pm2', 'redis', 'stack.json', 'gateway.models.yaml']);

/** Empties the stack's directory for a new run; refuses one that holds anything the stack did not write. */
async function clearStackDir(dir) {
  let entries;
  try {
    entries = await readdir(dir);
  } catch (error) {
    if (error.code === 'ENOENT') return;
    throw error;
  }
  const foreign = entries.filter((entry) => !STACK_ENTRIES.has(entry));
  if (foreign.length > 0) {
    throw new Error(
      `--dir ${dir} holds files the stack did not write (${foreign.slice(0, 5).join(', ')}${foreign.length > 5 ? ', ...' : ''}): ` +
        'the stack clears its directory on every start, so choose a new or empty one',
    );
  }
  await rm(dir, { recursive: true, force: true });
}

async function down(o) {
  const state = await readState(o.dir);
  if (!state) {
    log(`nothing to stop in ${o.dir}`);
    return;
  }
  const drainMs = (state.shutdownTimeoutMs ?? 10_000) + 8_000;
  if (state.nginx) {
    let pid;
    try {
      pid = Number((await readFile(state.nginx.pidFile, 'utf8')).trim());
    } catch {
      pid = undefined;
    }
    // SIGQUIT: graceful (finishes the requests in progress).
    await stopPid(pid, 'SIGQUIT', drainMs, 'nginx');
    log('nginx stopped');
  }
  if (state.pm2Home) {
    if (existsSync(state.pm2Home)) {
      try {
        pm2(['kill'], { ...process.env, PM2_HOME: state.pm2Home });
      } catch (error) {
        log(String(error));
      }
    }
    log('pm2 stopped');
  }
  const names = Object.keys(state.pids).filter((n) => n !== 'redis');
  await Promise.all(names.map((n) => stopPid(state.pids[n], 'SIGTERM', drainMs, n)));
  if (names.length > 0) log(`stopped ${names.join(', ')}`);
  if (state.pids.redis) {
    await stopPid(state.pids.redis, 'SIGTERM', 10_000, 'redis');
    log('redis stopped');
  }
  await rm(join(o.dir, 'stack.json'), { force: true });
  log(`down (logs kept in ${join(o.dir, 'logs')})`);
}

async function status(o) {
  const state = await readState(o.dir);
  if (!state) {
    log(`no stack in ${o.dir}`);
    process.exitCode = 1;
    return;
  }
  const host = state.host;
  const lines = [`mode ${state.mode}, dir ${state.dir}`];
  if (state.ports.redis) lines.push(`redis :${state.ports.redis} ${(await redisPing(state.ports.redis, host)) ? 'PONG' : 'DOWN'}`);
  if (state.ports.modelNode) lines.push(`model node :${state.ports.modelNode} ready=${await httpStatus(`http://${host}:${state.ports.modelNode}/health/ready`)}`);
  for (const port of state.ports.api ?? []) lines.push(`api :${port} live=${await httpStatus(`http://${host}:${port}/health/live`)} ready=${await httpStatus(`http://${host}:${port}/health/ready`)}`);
  if (state.ports.nginx) lines.push(`nginx :${state.ports.nginx} ready=${await httpStatus(`http://${host}:${state.ports.nginx}/health/ready`)}`);
  for (const line of lines) log(line);
  if (state.pm2Home) process.stdout.write(pm2(['ls'], { ...process.env, PM2_HOME: state.pm2Home }));
}

async function main() {
  let o;
  try {
    o = parse(process.argv.slice(2));
  } catch (error) {
    process.stderr.write(`${error instanceof Error ? error.message : String(error)}\n${USAGE}`);
    process.exit(2);
  }
  if (o.help || !['up', 'down', 'status'].includes(o.command)) {
    process.stdout.write(USAGE);
    process.exit(o.help ? 0 : 2);
  }
  try {
    if (o.command === 'up') {
      if (await readState(o.dir)) throw new Error(`a stack is already up in ${o.dir} (run 'stack down' first)`);
      try {
        await up(o);
      } catch (error) {
        process.stderr.write(`stack: up failed: ${error instanceof Error ? error.message : String(error)}\n`);
        if (await readState(o.dir)) {
          process.stderr.write('stack: stopping what was started\n');
          await down(o);
        }
        process.exit(1);
      }
    } else if (o.command === 'down') await down(o);
    else await status(o);
  } catch (error) {
    process.stderr.write(`stack: ${error instanceof Error ? error.message : String(error)}\n`);
    process.exit(1);
  }
}

await main();
