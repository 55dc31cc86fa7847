import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { writeFile, mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort } from './free-port.js';
import { apiMain, apiNodeArgs, modelsDir, repoRoot } from './paths.js';

export interface ApiServer {
  readonly url: string;
  readonly port: number;
  readonly process: ChildProcess;
  /** Everything the process wrote (stdout + stderr), for assertions and for debugging failures. */
  output(): string;
  /** SIGTERM and wait for exit (SIGKILL after `timeoutMs`). Resolves with the exit code/signal. */
  stop(timeoutMs?: number): Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

export interface StartApiOptions {
  readonly env?: Readonly<Record<string, string>>;
  /** YAML text of a models file, written to a temp file and passed as MODELS_FILE. */
  readonly modelsYaml?: string;
  readonly port?: number;
  readonly readyTimeoutMs?: number;
}

/** Starts the built API (apps/inference-api/dist/main.js) as a real process and waits until it answers. */
export async function startApiServer(options: StartApiOptions = {}): Promise<ApiServer> {
  const port = options.port ?? (await freePort());
  const env: Record<string, string> = {
    ...(process.env as Record<string, string>),
    PORT: String(port),
    HOST: '127.0.0.1',
    MODELS_DIR: modelsDir,
    LOG_LEVEL: 'warn',
    ...options.env,
  };
  if (options.modelsYaml !== undefined) {
    const dir = await mkdtemp(join(tmpdir(), 'infer-e2e-'));
    const file = join(dir, 'models.yaml');
    await writeFile(file, options.modelsYaml);
    env['MODELS_FILE'] = file;
  }
  const child = spawn(process.execPath, [...apiNodeArgs, apiMain], { cwd: repoRoot, env, stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  child.stdout?.on('data', (chunk: Buffer) => (output += chunk.toString()));
  child.stderr?.on('data', (chunk: Buffer) => (output += chunk.toString()));
  const url = `http://127.0.0.1:${port}`;
  const deadline = Date.now() + (options.readyTimeoutMs ?? 60_000);
  for (;;) {
    if (child.exitCode !== null || child.signalCode !== null) {
      throw new Error(`API exited during start (code ${child.exitCode}, signal ${child.signalCode}):\n${output}`);
    }
    try {
      const res = await fetch(`${url}/health/live`);
      if (res.ok) break;
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline) {
      child.kill('SIGKILL');
      throw new Error(`API did not become ready on ${url}:\n${output}`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  return {
    url,
    port,
    process: child,
    output: () => output,
    async stop(timeoutMs = 15_000) {
      if (child.exitCode !== null || child.signalCode !== null) return { code: child.exitCode, signal: child.signalCode };
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
      const [code, signal] = (await once(child, 'exit')) as [number | null, NodeJS.Signals | null];
      clearTimeout(timer);
      return { code, signal };
    },
  };
}
