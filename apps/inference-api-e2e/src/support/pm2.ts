import { spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { repoRoot } from './paths.js';

const PM2_BIN = join(repoRoot, 'node_modules/pm2/bin/pm2');

export interface Pm2Result {
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

export interface Pm2ProcessInfo {
  readonly name: string;
  readonly pm_id: number;
  readonly pid: number;
  readonly pm2_env: { readonly status: string; readonly exec_mode: string; readonly restart_time: number; readonly node_args?: readonly string[] };
}

export interface Pm2 {
  /** The isolated PM2_HOME (a temp dir). */
  readonly home: string;
  /** Runs the pm2 CLI of node_modules with this PM2_HOME (asynchronously: the test keeps running). Throws on a non-zero exit. */
  run(args: readonly string[], env?: Readonly<Record<string, string>>): Promise<Pm2Result>;
  /** `pm2 jlist`. */
  list(): Promise<Pm2ProcessInfo[]>;
  /** `pm2 kill` (stops every app and the daemon) and removes PM2_HOME. */
  kill(): Promise<void>;
}

/** A PM2 with its own PM2_HOME in a temp dir: its daemon is separate from any other PM2 on the machine. */
export async function createPm2(baseEnv: Readonly<Record<string, string>> = {}): Promise<Pm2> {
  const home = await mkdtemp(join(tmpdir(), 'infer-pm2-'));
  const run = (args: readonly string[], env: Readonly<Record<string, string>> = {}): Promise<Pm2Result> =>
    new Promise((resolve, reject) => {
      const child = spawn(process.execPath, [PM2_BIN, ...args], {
        cwd: repoRoot,
        env: { ...(process.env as Record<string, string>), ...baseEnv, ...env, PM2_HOME: home },
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      let stdout = '';
      let stderr = '';
      child.stdout?.on('data', (d: Buffer) => (stdout += d.toString()));
      child.stderr?.on('data', (d: Buffer) => (stderr += d.toString()));
      child.on('error', reject);
      child.on('close', (code) => {
        if (code === 0) resolve({ code, stdout, stderr });
        else reject(new Error(`pm2 ${args.join(' ')} exited with ${code}:\n${stdout}\n${stderr}`));
      });
    });
  return {
    home,
    run,
    async list() {
      const { stdout } = await run(['jlist']);
      const start = stdout.indexOf('[');
      return JSON.parse(stdout.slice(start)) as Pm2ProcessInfo[];
    },
    async kill() {
      await run(['kill']).catch(() => undefined);
      await rm(home, { recursive: true, force: true });
    },
  };
}
