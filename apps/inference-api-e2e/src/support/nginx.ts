import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { freePort } from './free-port.js';
import { repoRoot } from './paths.js';

/** The part of tools/stack/nginx.mjs the tests use (it renders deploy/nginx, the shipped config). */
interface NginxTooling {
  nginxBinary(): string;
  prepareNginx(options: { prefix: string; listen: string | number; servers: readonly string[] }): Promise<{
    prefix: string;
    conf: string;
    errorLog: string;
    accessLog: string;
    args: string[];
  }>;
}

export interface NginxServer {
  readonly url: string;
  readonly port: number;
  readonly prefix: string;
  accessLog(): Promise<string>;
  errorLog(): Promise<string>;
  /** Stops nginx (SIGTERM, waits for exit) and removes its prefix. */
  stop(): Promise<void>;
}

export interface StartNginxOptions {
  /** Upstream API instances, `host:port`. */
  readonly servers: readonly string[];
  readonly port?: number;
}

/**
 * Starts the Debian `nginx` binary in the foreground (`daemon off`) with deploy/nginx rendered
 * into its own prefix in a temp dir (tools/stack/nginx.mjs), listening on a free loopback port.
 */
export async function startNginx(options: StartNginxOptions): Promise<NginxServer> {
  const tooling = (await import(pathToFileURL(join(repoRoot, 'tools/stack/nginx.mjs')).href)) as NginxTooling;
  const port = options.port ?? (await freePort());
  const prefix = await mkdtemp(join(tmpdir(), 'infer-nginx-'));
  const nginx = await tooling.prepareNginx({ prefix, listen: `127.0.0.1:${port}`, servers: options.servers });
  const child: ChildProcess = spawn(tooling.nginxBinary(), [...nginx.args, '-g', 'daemon off;'], { stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  child.stdout?.on('data', (d: Buffer) => (output += d.toString()));
  child.stderr?.on('data', (d: Buffer) => (output += d.toString()));
  const url = `http://127.0.0.1:${port}`;
  const deadline = Date.now() + 10_000;
  for (;;) {
    if (child.exitCode !== null || child.signalCode !== null) {
      throw new Error(`nginx exited during start:\n${output}\n${await readFile(nginx.errorLog, 'utf8').catch(() => '')}`);
    }
    try {
      if ((await fetch(`${url}/nginx-health`)).ok) break;
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline) {
      child.kill('SIGKILL');
      throw new Error(`nginx did not answer on ${url}:\n${output}`);
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  return {
    url,
    port,
    prefix,
    accessLog: () => readFile(nginx.accessLog, 'utf8').catch(() => ''),
    errorLog: () => readFile(nginx.errorLog, 'utf8').catch(() => ''),
    async stop() {
      if (child.exitCode === null && child.signalCode === null) {
        const exited = once(child, 'exit');
        child.kill('SIGTERM');
        const timer = setTimeout(() => child.kill('SIGKILL'), 5_000);
        await exited;
        clearTimeout(timer);
      }
      await rm(prefix, { recursive: true, force: true });
    },
  };
}
