import { spawn } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type FakeUpstream, startFakeUpstream } from '@infer/model-providers/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort } from '../support/free-port.js';
import { chatOnce, fakeModelsYaml, runBoundedLoad } from '../support/load.js';
import { repoRoot } from '../support/paths.js';

function stack(args: readonly string[]): Promise<{ code: number | null; output: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [join(repoRoot, 'tools/stack/stack.mjs'), ...args], { cwd: repoRoot, stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    child.stdout?.on('data', (d: Buffer) => (output += d.toString()));
    child.stderr?.on('data', (d: Buffer) => (output += d.toString()));
    child.on('close', (code) => resolve({ code, output }));
  });
}

function portIsFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const server = createServer();
    server.once('error', () => resolve(false));
    server.listen(port, '127.0.0.1', () => server.close(() => resolve(true)));
  });
}

/** Two consecutive free ports (procs mode puts the API instances on --api-port, +1, ...). */
async function consecutiveFreePorts(n: number): Promise<number> {
  for (let attempt = 0; attempt < 20; attempt++) {
    const base = await freePort();
    let ok = true;
    for (let i = 1; i < n && ok; i++) ok = await portIsFree(base + i);
    if (ok) return base;
  }
  throw new Error('no consecutive free ports');
}

/** `npm run stack:up` / `stack:down` (tools/stack/stack.mjs): the local stack the deploy guide uses. */
describe('tools/stack', () => {
  let upstream: FakeUpstream;
  let dir: string;
  let modelsFile: string;

  beforeAll(async () => {
    upstream = await startFakeUpstream({ recordLimit: 10 });
    dir = await mkdtemp(join(tmpdir(), 'infer-stack-e2e-'));
    modelsFile = join(dir, 'models.yaml');
    await writeFile(modelsFile, fakeModelsYaml(upstream.url));
  });

  afterAll(async () => {
    await stack(['down', '--dir', join(dir, 'procs')]);
    await stack(['down', '--dir', join(dir, 'pm2')]);
    await upstream?.close();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it.each(['procs', 'pm2'] as const)('%s mode: up brings Redis, 2 API instances and NGINX up; down stops everything', async (mode) => {
    const stackDir = join(dir, mode);
    const nginxPort = await freePort();
    const redisPort = await freePort();
    const apiPort = await consecutiveFreePorts(2);
    const upResult = await stack([
      'up', '--mode', mode, '--instances', '2', '--dir', stackDir, '--nginx-port', String(nginxPort), '--api-port', String(apiPort),
      '--redis-port', String(redisPort), '--models-file', modelsFile, '--log-level', 'warn', '--shutdown-timeout-ms', '3000',
    ]);
    expect(upResult.output).toContain('GET /health/ready 200');
    expect(upResult.code).toBe(0);

    const url = `http://127.0.0.1:${nginxPort}`;
    const servedBy = new Set<string>();
    const load = await runBoundedLoad({
      concurrency: 4,
      durationMs: 10_000,
      maxRequests: 40,
      request: async (i) => servedBy.add(await chatOnce(url, `stack ${mode} ${i}`)),
    });
    expect(load.failed).toBe(0);
    expect(servedBy.size).toBe(2);
    const ready = (await (await fetch(`${url}/health/ready`)).json()) as { details: Record<string, { status: string }> };
    expect(ready.details['redis']?.status).toBe('up');

    // A conversation continued turn after turn (previous_response_id) through NGINX, whichever instance
    // answers: the stored responses are in the stack's Redis.
    const turnServedBy = new Set<string>();
    let previous: string | null = null;
    for (let turn = 0; turn < 6; turn++) {
      const res = await fetch(`${url}/v1/responses`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ model: 'm', input: `turn ${turn}`, previous_response_id: previous }),
      });
      const body = (await res.json()) as { id: string; store: boolean };
      expect(res.status, JSON.stringify(body)).toBe(200);
      expect(body.store).toBe(true);
      turnServedBy.add(res.headers.get('x-served-by') ?? '');
      previous = body.id;
    }
    // In procs mode NGINX alternates between the two instances; PM2's cluster balances connections, and
    // NGINX's keep-alive connection to it is one worker (the load above reaches both).
    if (mode === 'procs') expect(turnServedBy.size).toBe(2);
    const items = (await (await fetch(`${url}/v1/responses/${previous}/input_items?limit=100`)).json()) as { data: unknown[] };
    // Six inputs and the five outputs before the last.
    expect(items.data).toHaveLength(11);

    if (mode === 'procs') {
      // The instances run with the API's V8 flags (nodeArgs), as npm start and PM2 run it.
      const { nodeArgs } = JSON.parse(await readFile(join(repoRoot, 'apps/inference-api/package.json'), 'utf8')) as { nodeArgs: string[] };
      const state = JSON.parse(await readFile(join(stackDir, 'stack.json'), 'utf8')) as { pids: Record<string, number> };
      for (const name of ['api-1', 'api-2']) {
        const argv = (await readFile(`/proc/${state.pids[name]}/cmdline`, 'utf8')).split('\0');
        for (const flag of nodeArgs) expect(argv, name).toContain(flag);
      }
    }

    const status = await stack(['status', '--dir', stackDir]);
    expect(status.output).toContain(`nginx :${nginxPort} ready=200`);

    const downResult = await stack(['down', '--dir', stackDir]);
    expect(downResult.code).toBe(0);
    for (const port of [nginxPort, redisPort, apiPort, ...(mode === 'procs' ? [apiPort + 1] : [])]) {
      expect(await portIsFree(port)).toBe(true);
    }
  });
});
