import { dirname, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';
import { CONFIG_VARIABLES } from './config/app-config.js';

const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), '../../..');

interface Pm2App {
  readonly name: string;
  readonly env: Record<string, string>;
}

/** deploy/README.md: every variable of the configuration table can be set in the environment of `pm2 start`. */
describe('ecosystem.config.js', () => {
  const saved = Object.fromEntries(CONFIG_VARIABLES.map((name) => [name, process.env[name]]));
  afterEach(() => {
    for (const [name, value] of Object.entries(saved)) {
      if (value === undefined) delete process.env[name];
      else process.env[name] = value;
    }
  });

  it('passes every configuration variable on to the gateway workers', async () => {
    for (const name of CONFIG_VARIABLES) process.env[name] = `set-${name}`;
    process.env['SHUTDOWN_TIMEOUT_MS'] = '12345';
    // A fresh instance of the module: it reads the environment when it is evaluated.
    const url = `${pathToFileURL(resolve(repoRoot, 'ecosystem.config.js')).href}?all-variables`;
    const { apps } = (await import(url)) as { apps: Pm2App[] };
    const gateway = apps.find((app) => app.name === 'inference-api');
    expect(gateway).toBeDefined();
    // Left to each worker: INSTANCE_ID (host:pid; one value for every worker would hide which one
    // answered) and NODE_APP_INSTANCE (PM2 numbers its workers itself).
    const perWorker = ['INSTANCE_ID', 'NODE_APP_INSTANCE'];
    const missing = CONFIG_VARIABLES.filter((name) => !perWorker.includes(name) && gateway!.env[name] !== process.env[name]);
    expect(missing).toEqual([]);
    for (const name of perWorker) expect(gateway!.env[name]).toBeUndefined();
    // The model node is internal: no client keys, no cache, its own models file.
    const modelNode = apps.find((app) => app.name === 'model-node');
    expect(modelNode!.env['API_KEYS']).toBe('');
    expect(modelNode!.env['API_KEYS_FILE']).toBe('');
    expect(modelNode!.env['RATE_LIMIT_RPM']).toBe('0');
    expect(modelNode!.env['METRICS_PORT']).toBe('');
    expect(modelNode!.env['CACHE_ENABLED']).toBe('false');
    expect(modelNode!.env['RESPONSES_STORE_ENABLED']).toBe('false');
  });
});
