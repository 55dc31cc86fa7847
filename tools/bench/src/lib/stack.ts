/**
 * Starting what the bench measures: fake upstreams, the API (gateway and model node), the bare
 * servers, the Portkey gateway and the raw node-llama-cpp runner. Servers under test go on the
 * server core, fake upstreams on the load generator's core.
 */
import { existsSync, readFileSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { request } from 'node:http';
import { createRequire } from 'node:module';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { freePort, type ProcessGroup, type Started, waitUntil } from './processes.js';

const here = dirname(fileURLToPath(import.meta.url));
/** tools/bench/dist/lib -> the repository root. */
export const repoRoot = resolve(here, '../../../..');
export const benchDist = resolve(here, '..');
export const apiMain = join(repoRoot, 'apps/inference-api/dist/main.js');
/** The V8 flags the API runs with everywhere (`nodeArgs` in its package.json; PM2 and `npm start` use them too). */
export const apiNodeArgs: readonly string[] = (JSON.parse(readFileSync(join(repoRoot, 'apps/inference-api/package.json'), 'utf8')) as { nodeArgs: string[] }).nodeArgs;
export const fakeUpstreamCli = join(repoRoot, 'libs/model-providers/dist/lib/testing/fake-upstream.cli.js');

export function portkeyStartScript(): string {
  const require = createRequire(import.meta.url);
  try {
    return join(dirname(require.resolve('@portkey-ai/gateway/package.json')), 'build/start-server.js');
  } catch {
    // The package has an exports map without ./package.json: look for it on the node_modules path.
    for (let dir = here; dir !== dirname(dir); dir = dirname(dir)) {
      const candidate = join(dir, 'node_modules/@portkey-ai/gateway/build/start-server.js');
      if (existsSync(candidate)) return candidate;
    }
  }
  throw new Error('@portkey-ai/gateway is not installed (npm ci at the repository root)');
}

export interface CpuPlan {
  /** Load generator (wrk, the bench's own clients) and the fake upstreams. */
  readonly load: number | undefined;
  /** The server under test. */
  readonly server: number | undefined;
}

export interface HttpServer {
  readonly name: string;
  readonly url: string;
  readonly port: number;
  readonly process: Started;
}

/** Resolves true once anything answers HTTP on the port. */
function answers(port: number): Promise<boolean> {
  return new Promise((resolvePromise) => {
    const req = request({ host: '127.0.0.1', port, path: '/v1/models', method: 'GET', timeout: 1_000, agent: false }, (res) => {
      res.resume();
      resolvePromise((res.statusCode ?? 0) > 0);
    });
    req.on('error', () => resolvePromise(false));
    req.on('timeout', () => req.destroy());
    req.end();
  });
}

async function startServer(
  group: ProcessGroup,
  name: string,
  cpu: number | undefined,
  build: (port: number) => { command: string; args: string[]; env?: Record<string, string | undefined> },
  timeoutMs = 60_000,
): Promise<HttpServer> {
  const port = await freePort();
  const spec = build(port);
  const started = group.start({ name, command: spec.command, args: spec.args, env: spec.env ?? {}, cpu, cwd: repoRoot });
  await waitUntil(name, () => answers(port), {
    timeoutMs,
    alive: () => group.isRunning(started),
    detail: () => started.tail(),
  });
  return { name, url: `http://127.0.0.1:${port}`, port, process: started };
}

export interface FakeUpstreamSpec {
  readonly latencyMs?: number;
  readonly tokens?: number;
  readonly interTokenDelayMs?: number;
}

export function startFakeUpstream(group: ProcessGroup, name: string, cpu: number | undefined, spec: FakeUpstreamSpec): Promise<HttpServer> {
  return startServer(group, name, cpu, (port) => ({
    command: process.execPath,
    args: [
      fakeUpstreamCli,
      '--port',
      String(port),
      '--latency-ms',
      String(spec.latencyMs ?? 0),
      '--tokens',
      String(spec.tokens ?? 16),
      '--inter-token-delay-ms',
      String(spec.interTokenDelayMs ?? 0),
    ],
  }));
}

export interface ApiSpec {
  readonly modelsYaml: string;
  readonly workDir: string;
  readonly env: Readonly<Record<string, string | undefined>>;
  /** Extra node arguments, after the API's own (apiNodeArgs). */
  readonly nodeArgs?: readonly string[];
}

export async function startApi(group: ProcessGroup, name: string, cpu: number | undefined, spec: ApiSpec): Promise<HttpServer> {
  const modelsFile = join(spec.workDir, `${name}.models.yaml`);
  await writeFile(modelsFile, spec.modelsYaml);
  return startServer(group, name, cpu, (port) => ({
    command: process.execPath,
    args: [...apiNodeArgs, ...(spec.nodeArgs ?? []), apiMain],
    env: {
      PORT: String(port),
      HOST: '127.0.0.1',
      MODELS_FILE: modelsFile,
      INSTANCE_ID: name,
      // Nothing from the caller's shell that would change what is measured (API keys would turn the
      // load into 401s; metrics add a hook per response).
      REDIS_URL: undefined,
      PREDICT_MODEL: undefined,
      API_KEYS: undefined,
      METRICS_PORT: undefined,
      CORS_ORIGINS: undefined,
      ...spec.env,
    },
  }));
}

export function startBare(group: ProcessGroup, kind: 'http' | 'fastify' | 'nest', cpu: number | undefined, bodyFile: string): Promise<HttpServer> {
  return startServer(group, `bare-${kind}`, cpu, (port) => ({
    command: process.execPath,
    args: [join(benchDist, `servers/bare-${kind}.js`), '--port', String(port), '--body-file', bodyFile],
  }));
}

export function startPortkey(group: ProcessGroup, cpu: number | undefined): Promise<HttpServer> {
  const script = portkeyStartScript();
  return startServer(group, 'portkey', cpu, (port) => ({
    command: process.execPath,
    args: [join(benchDist, 'servers/portkey-loopback.js'), '--headless', `--port=${port}`],
    env: { PORTKEY_START_SERVER: script },
  }));
}

/** The raw node-llama-cpp runner (IPC). */
export interface RawLlama {
  readonly process: Started;
  call<T>(message: Record<string, unknown>, expect: string, timeoutMs: number): Promise<T>;
}

export async function startRawLlama(group: ProcessGroup, cpu: number | undefined): Promise<RawLlama> {
  const started = group.start({
    name: 'llama-raw',
    command: process.execPath,
    args: [join(benchDist, 'servers/llama-raw.js')],
    cpu,
    cwd: repoRoot,
    ipc: true,
  });
  const child = started.child;
  const call = <T>(message: Record<string, unknown> | undefined, expect: string, timeoutMs: number): Promise<T> =>
    new Promise<T>((resolvePromise, reject) => {
      const timer = setTimeout(() => finish(new Error(`llama-raw: no '${expect}' after ${timeoutMs} ms\n${started.tail()}`)), timeoutMs);
      const onMessage = (reply: { type: string; message?: string }): void => {
        if (reply.type === expect) finish(undefined, reply as T);
        else if (reply.type === 'error') finish(new Error(`llama-raw: ${reply.message ?? 'failed'}`));
      };
      const onExit = (): void => finish(new Error(`llama-raw exited\n${started.tail()}`));
      const finish = (error: Error | undefined, value?: T): void => {
        clearTimeout(timer);
        child.off('message', onMessage);
        child.off('exit', onExit);
        if (error) reject(error);
        else resolvePromise(value as T);
      };
      child.on('message', onMessage);
      child.once('exit', onExit);
      if (message) child.send(message);
    });
  await call(undefined, 'ready', 30_000);
  return { process: started, call: (message, expect, timeoutMs) => call(message, expect, timeoutMs) };
}
