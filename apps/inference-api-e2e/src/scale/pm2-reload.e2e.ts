import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type FakeUpstream, startFakeUpstream } from '@infer/model-providers/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort, freePortRange } from '../support/free-port.js';
import { chatOnce, chatStreamComplete, fakeModelsYaml, runBoundedLoad, sleep } from '../support/load.js';
import { type NginxServer, startNginx } from '../support/nginx.js';
import { apiNodeArgs } from '../support/paths.js';
import { createPm2, type Pm2 } from '../support/pm2.js';

/**
 * `pm2 start ecosystem.config.js` (the repo's own file) in cluster mode behind deploy/nginx, then
 * `pm2 reload` while non-streamed requests and SSE streams keep coming.
 */
describe('PM2 cluster mode behind NGINX', () => {
  const TOKENS = 15;
  let upstream: FakeUpstream;
  let pm2: Pm2;
  let nginx: NginxServer;
  let dir: string;
  let metricsPort: number;

  /** The `instance` label each worker's metrics port reports (METRICS_PORT + its PM2 number). */
  async function metricsInstances(): Promise<Array<string | undefined>> {
    return Promise.all(
      [metricsPort, metricsPort + 1].map(async (port) => {
        try {
          const text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
          return /^process_cpu_user_seconds_total\{instance="([^"]+)"\}/m.exec(text)?.[1];
        } catch {
          return undefined;
        }
      }),
    );
  }

  beforeAll(async () => {
    // Streams: 15 tokens, 100 ms apart (1.5 s each).
    upstream = await startFakeUpstream({ tokens: TOKENS, interTokenDelayMs: 100, latencyMs: 10, recordLimit: 10 });
    dir = await mkdtemp(join(tmpdir(), 'infer-pm2-e2e-'));
    const modelsFile = join(dir, 'models.yaml');
    await writeFile(modelsFile, fakeModelsYaml(upstream.url));
    const port = await freePort();
    metricsPort = await freePortRange(2);
    pm2 = await createPm2();
    await pm2.run(['start', 'ecosystem.config.js', '--only', 'inference-api'], {
      PORT: String(port),
      HOST: '127.0.0.1',
      PM2_INSTANCES: '2',
      MODELS_FILE: modelsFile,
      SHUTDOWN_TIMEOUT_MS: '10000',
      CACHE_ENABLED: 'false',
      LOG_LEVEL: 'warn',
      METRICS_PORT: String(metricsPort),
    });
    nginx = await startNginx({ servers: [`127.0.0.1:${port}`] });
  });

  afterAll(async () => {
    await nginx?.stop();
    await pm2?.kill();
    await upstream?.close();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('runs the API in cluster mode from ecosystem.config.js', async () => {
    const apps = await pm2.list();
    expect(apps.map((a) => [a.name, a.pm2_env.exec_mode, a.pm2_env.status])).toEqual([
      ['inference-api', 'cluster_mode', 'online'],
      ['inference-api', 'cluster_mode', 'online'],
    ]);
    expect((await fetch(`${nginx.url}/health/ready`)).status).toBe(200);
    // Each worker gets the API's V8 flags (package.json `nodeArgs`) as node arguments. (/proc/<pid>/cmdline
    // cannot tell: PM2 overwrites it with the process title.)
    for (const app of apps) {
      for (const flag of apiNodeArgs) expect(app.pm2_env.node_args).toContain(flag);
    }
    // Each worker serves its own metrics on METRICS_PORT + its number.
    const instances = await metricsInstances();
    expect(instances.map((i) => Number(i?.split(':').pop())).sort()).toEqual(apps.map((a) => a.pid).sort());
  });

  it('pm2 reload during load with live SSE streams: 0 failed requests, 0 cut streams', async () => {
    const pidsBefore = new Set((await pm2.list()).map((a) => a.pid));
    let reloaded = false;
    let reloadDoneAt = 0;
    const stopAfterReload = () => reloaded && Date.now() - reloadDoneAt > 1_000;
    const servedAfter = new Set<string>();

    const requests = runBoundedLoad({
      concurrency: 4,
      durationMs: 40_000,
      maxRequests: 20_000,
      stop: stopAfterReload,
      request: async (i) => {
        const startedAfterReload = reloaded;
        const by = await chatOnce(nginx.url, `reload ${i}`);
        if (startedAfterReload) servedAfter.add(by);
      },
    });
    const streams = runBoundedLoad({
      concurrency: 4,
      durationMs: 40_000,
      maxRequests: 500,
      stop: stopAfterReload,
      request: (i) => chatStreamComplete(nginx.url, `reload stream ${i}`, TOKENS),
    });

    await sleep(1_000);
    const started = Date.now();
    await pm2.run(['reload', 'inference-api']);
    reloaded = true;
    reloadDoneAt = Date.now();
    const [r, s] = await Promise.all([requests, streams]);
    console.log(
      `pm2 reload took ${reloadDoneAt - started} ms; ${r.total} requests (${r.failed} failed), ${s.total} streams (${s.failed} cut or failed)`,
    );

    expect(r.failures).toEqual([]);
    expect(s.failures).toEqual([]);
    expect(r.failed).toBe(0);
    expect(s.failed).toBe(0);
    expect(r.total).toBeGreaterThan(50);
    // Streams were running across the reload: 4 at a time for its whole duration.
    expect(s.total).toBeGreaterThanOrEqual(8);

    const after = await pm2.list();
    expect(after.map((a) => a.pm2_env.status)).toEqual(['online', 'online']);
    for (const app of after) expect(pidsBefore.has(app.pid)).toBe(false);
    // Requests started after `pm2 reload` returned were all served by the new workers
    // (x-served-by is host:pid by default): the old ones are gone.
    const newPids = new Set(after.map((a) => String(a.pid)));
    expect(servedAfter.size).toBeGreaterThan(0);
    for (const by of servedAfter) expect(newPids.has(by.split(':').pop() ?? '')).toBe(true);
    // The new workers took over the metrics ports once the old ones let go of them.
    const deadline = Date.now() + 10_000;
    let instances = await metricsInstances();
    while (!instances.every((i) => newPids.has(i?.split(':').pop() ?? '')) && Date.now() < deadline) {
      await sleep(200);
      instances = await metricsInstances();
    }
    expect(instances.map((i) => i?.split(':').pop()).sort()).toEqual([...newPids].sort());
  });

  it('refuses a reload through ecosystem.config.js whose configuration is bad, before any worker is touched', async () => {
    const before = (await pm2.list()).map((a) => a.pid).sort();
    const refused = await pm2.run(['reload', 'ecosystem.config.js', '--only', 'inference-api', '--update-env'], { LOG_LEVEL: 'verbose' }).then(
      () => undefined,
      (error: unknown) => (error as Error).message,
    );
    expect(refused).toMatch(/inference-api: Invalid configuration: LOG_LEVEL must be equal to one of the allowed values \(got "verbose"\)/);
    expect(refused).toContain('nothing was started or reloaded');
    // The same workers, still serving.
    const after = await pm2.list();
    expect(after.map((a) => a.pm2_env.status)).toEqual(['online', 'online']);
    expect(after.map((a) => a.pid).sort()).toEqual(before);
    for (let i = 0; i < 5; i++) await chatOnce(nginx.url, `after a refused reload ${i}`);
    // Stopping through the file is not checked: a broken configuration never keeps workers from stopping.
    await pm2.run(['stop', 'ecosystem.config.js', '--only', 'inference-api'], { LOG_LEVEL: 'verbose' });
    expect((await pm2.list()).map((a) => a.pm2_env.status)).toEqual(['stopped', 'stopped']);
  });
});
