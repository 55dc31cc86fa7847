import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

/**
 * The API's V8 flags live in one list, `nodeArgs` in apps/inference-api/package.json. V8 reads the
 * young-generation size and its thread-pool size when the process starts (v8.setFlagsFromString is
 * too late for them), so every launcher has to pass them: PM2 (ecosystem.config.js reads the list),
 * the bench and the e2e tests (they read it too) and the npm start scripts (plain strings, checked
 * here).
 */
const appDir = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const repoRoot = resolve(appDir, '../..');
const readJson = (file: string) => JSON.parse(readFileSync(file, 'utf8')) as { nodeArgs?: string[]; scripts: Record<string, string> };

describe('the API node arguments', () => {
  const app = readJson(resolve(appDir, 'package.json'));
  const nodeArgs = app.nodeArgs ?? [];

  it('are a non-empty list of node flags that this node accepts', () => {
    expect(nodeArgs.length).toBeGreaterThan(0);
    for (const flag of nodeArgs) expect(flag).toMatch(/^--[a-z0-9-]+(=\S+)?$/);
    // node exits with 9 and "bad option" on an unknown flag.
    const run = spawnSync(process.execPath, [...nodeArgs, '-e', '0'], { encoding: 'utf8' });
    expect(run.stderr).toBe('');
    expect(run.status).toBe(0);
  });

  it('are passed by the npm scripts that start the API', () => {
    const root = readJson(resolve(repoRoot, 'package.json'));
    const launchers = [root.scripts['start'], app.scripts['start'], app.scripts['serve']];
    for (const script of launchers) {
      const command = script?.split('&&').find((part) => part.includes('dist/main.js'));
      expect(command, script).toBeDefined();
      const args = command!.trim().split(/\s+/);
      expect(args[0]).toBe('node');
      const entry = args.findIndex((arg) => arg.endsWith('dist/main.js'));
      for (const flag of nodeArgs) expect(args.slice(1, entry), script).toContain(flag);
    }
  });

  it('are passed by PM2 to both apps of ecosystem.config.js', async () => {
    const { apps } = (await import(resolve(repoRoot, 'ecosystem.config.js'))) as { apps: { name: string; node_args: string[] }[] };
    expect(apps.length).toBeGreaterThan(0);
    for (const pm2App of apps) {
      for (const flag of nodeArgs) expect(pm2App.node_args, pm2App.name).toContain(flag);
    }
  });
});
