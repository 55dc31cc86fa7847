import { spawn } from 'node:child_process';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type FakeUpstream, startFakeUpstream } from '@infer/model-providers/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort } from '../support/free-port.js';
import { chatOnce, fakeModelsYaml, runBoundedLoad } from '../support/load.js';
import { repoRoot } from '../support/paths.js';

function stack(args: readonly string[], env: Readonly<Record<string, string>> = {}): Promise<{ code: number | null; output: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [join(repoRoot, 'tools/stack/stack.mjs'), ...args], {
      cwd: repoRoot,
      env: { ...process.env, ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
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
    await stack(['down', '--dir', join(dir, 'node')]);
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

  it('procs mode with the model node: API keys and the rate limit apply at the gateway only, as under PM2', async () => {
    const stackDir = join(dir, 'node');
    const [nginxPort, apiPort, nodePort] = [await freePort(), await freePort(), await freePort()];
    const up = await stack(
      ['up', '--mode', 'procs', '--instances', '1', '--no-redis', '--dir', stackDir, '--nginx-port', String(nginxPort), '--api-port', String(apiPort),
        '--model-node-port', String(nodePort), '--log-level', 'warn', '--shutdown-timeout-ms', '3000'],
      { API_KEYS: 'sk-stack-a,sk-stack-b', RATE_LIMIT_RPM: '3' },
    );
    expect(up.code, up.output).toBe(0);
    try {
      // Three requests per key: within each key's limit. Were the model node keyed or limited too, the
      // gateway's calls would be refused (401) or limited as one client (the 4th).
      for (const key of ['sk-stack-a', 'sk-stack-b']) {
        for (let i = 0; i < 3; i++) {
          const res = await fetch(`http://127.0.0.1:${nginxPort}/v1/chat/completions`, {
            method: 'POST',
            headers: { 'content-type': 'application/json', authorization: `Bearer ${key}` },
            body: JSON.stringify({ model: 'tiny-llama', messages: [{ role: 'user', content: `node ${key} ${i}` }], max_tokens: 4 }),
          });
          expect(res.status, await res.text()).toBe(200);
        }
      }
    } finally {
      expect((await stack(['down', '--dir', stackDir])).code).toBe(0);
    }
  });

  it('refuses a --dir that holds files it did not write (it clears its directory on start)', async () => {
    const foreign = join(dir, 'precious');
    await mkdir(join(foreign, 'important'), { recursive: true });
    await writeFile(join(foreign, 'important/data.txt'), 'precious');
    const up = await stack(['up', '--mode', 'procs', '--instances', '1', '--no-redis', '--dir', foreign, '--models-file', modelsFile,
      '--nginx-port', String(await freePort()), '--api-port', String(await freePort())]);
    expect(up.code).not.toBe(0);
    expect(up.output).toContain('holds files the stack did not write (important)');
    expect(await readFile(join(foreign, 'important/data.txt'), 'utf8')).toBe('precious');
  });
});
