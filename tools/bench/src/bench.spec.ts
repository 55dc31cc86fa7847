/**
 * Proves the harness works: runs the built bench in --quick mode (real processes on loopback, about
 * a minute) and checks that the JSON has every section and the chart exists. It asserts nothing
 * about speed: the numbers of a quick run on a shared machine mean little.
 */
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';

const main = join(dirname(fileURLToPath(import.meta.url)), '../dist/main.js');

describe('npm run bench -- --quick', () => {
  let dir: string | undefined;
  afterAll(async () => {
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('measures every target, writes the JSON, the chart and the markdown, and exits 0', async () => {
    dir = await mkdtemp(join(tmpdir(), 'bench-spec-'));
    const jsonPath = join(dir, 'out.json');
    const child = spawn(process.execPath, [main, '--quick', '--json', jsonPath], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    const [code] = (await once(child, 'exit')) as [number | null];
    expect(code, stderr).toBe(0);

    const result = JSON.parse(await readFile(jsonPath, 'utf8')) as Record<string, unknown>;
    for (const section of ['meta', 'throughput', 'streaming', 'coalescing', 'llama', 'memory', 'targets']) {
      expect(result, `section ${section}`).toHaveProperty(section);
    }
    // Every section was measured (an unmeasurable one would carry { error }).
    for (const section of ['throughput', 'streaming', 'coalescing', 'llama', 'memory']) {
      expect(result[section], `${section}: ${JSON.stringify(result[section]).slice(0, 300)}`).not.toHaveProperty('error');
    }

    const throughput = result['throughput'] as { cells: { variant: string; target: string; concurrency: number; rps: number }[] };
    const targets = new Set(throughput.cells.map((c) => c.target));
    for (const target of ['direct', 'bare-http', 'bare-fastify', 'bare-nest', 'api-miss', 'api-hit', 'api-nocache', 'api-miss-logged', 'portkey']) {
      expect(targets, target).toContain(target);
    }
    expect(new Set(throughput.cells.map((c) => c.concurrency))).toEqual(new Set([1, 16, 64]));
    expect(new Set(throughput.cells.map((c) => c.variant))).toEqual(new Set(['upstream 0 ms', 'upstream 20 ms']));

    const streaming = result['streaming'] as { firstToken: { target: string }[]; many: { target: string; streams: number }[] };
    expect(streaming.firstToken.map((x) => x.target)).toEqual(expect.arrayContaining(['direct', 'api', 'portkey']));
    expect(streaming.many.find((x) => x.target === 'api')?.streams).toBeGreaterThanOrEqual(512);

    expect(result['coalescing']).toHaveProperty('upstreamCalls');
    const llama = result['llama'] as { models: { name: string }[] };
    expect(llama.models.map((m) => m.name)).toEqual(['tiny', 'large']);
    const gateway = (result['memory'] as { gateway: { rssMiB: number; privateMiB: number | null } | null }).gateway;
    expect(gateway).not.toBeNull();
    // The private part (smaps_rollup) is smaller than the RSS: node's binary pages are shared.
    expect(gateway!.privateMiB).toBeGreaterThan(0);
    expect(gateway!.privateMiB).toBeLessThan(gateway!.rssMiB);

    const goals = result['targets'] as { id: string; met: boolean; measured: string }[];
    expect(goals.map((g) => g.id)).toEqual([
      'miss-vs-portkey',
      'miss-vs-fastify',
      'added-p50',
      'added-p99',
      'hit-vs-fastify',
      'stream-ttft',
      'stream-stall',
      'coalescing',
      'llama-tiny',
      'llama-large',
      'rss',
    ]);
    for (const goal of goals) expect(typeof goal.met).toBe('boolean');

    const meta = result['meta'] as { pinning: { description: string }; loadGenerator: string; logging: string };
    expect(meta.pinning.description).toMatch(/pinned|not pinned/);
    expect(meta.loadGenerator).toContain('wrk');
    expect(meta.logging).toContain('LOG_REQUESTS');

    expect(existsSync(join(dir, 'out.svg'))).toBe(true);
    expect(await readFile(join(dir, 'out.md'), 'utf8')).toContain('### Targets');
    expect(await readFile(join(dir, 'out.svg'), 'utf8')).toMatch(/^<svg[\s\S]*<\/svg>\n$/);
    expect(stdout).toContain('### Targets');
    expect(stdout).toMatch(/\*\*(met|not met)\*\*/);
  });
});
