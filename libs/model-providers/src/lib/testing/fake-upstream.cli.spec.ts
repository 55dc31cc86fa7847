import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { FAKE_UPSTREAM_CLI_USAGE, parseFakeUpstreamArgs, runFakeUpstreamCli } from './fake-upstream.cli.js';

describe('fake-upstream CLI', () => {
  it('parses its options', () => {
    expect(
      parseFakeUpstreamArgs(['--port', '8000', '--latency-ms', '5', '--tokens', '32', '--inter-token-delay-ms', '2', '--host', '0.0.0.0']),
    ).toEqual({ help: false, host: '0.0.0.0', port: 8000, latencyMs: 5, tokens: 32, interTokenDelayMs: 2 });
    expect(parseFakeUpstreamArgs([])).toEqual({ help: false });
    expect(parseFakeUpstreamArgs(['--api-key', 'k', '--help'])).toEqual({ help: true, apiKey: 'k' });
  });

  it('rejects unknown options and invalid numbers', () => {
    expect(() => parseFakeUpstreamArgs(['--bogus'])).toThrow();
    expect(() => parseFakeUpstreamArgs(['--port', 'abc'])).toThrow(/--port/);
    expect(() => parseFakeUpstreamArgs(['--tokens', '-1'])).toThrow();
    expect(() => parseFakeUpstreamArgs(['--port', '70000'])).toThrow(/65535/);
  });

  it('starts the upstream and prints "listening on <url>"', async () => {
    const lines: string[] = [];
    const upstream = await runFakeUpstreamCli(['--tokens', '3'], (line) => lines.push(line));
    try {
      expect(upstream).toBeDefined();
      expect(lines).toEqual([`listening on ${upstream?.url}\n`]);
      const res = await fetch(`${upstream?.url}/chat/completions`, {
        method: 'POST',
        body: JSON.stringify({ model: 'm', messages: [{ role: 'user', content: 'x' }] }),
      });
      expect(((await res.json()) as { usage: { completion_tokens: number } }).usage.completion_tokens).toBe(3);
    } finally {
      await upstream?.close();
    }
    const help: string[] = [];
    await expect(runFakeUpstreamCli(['--help'], (line) => help.push(line))).resolves.toBeUndefined();
    expect(help).toEqual([FAKE_UPSTREAM_CLI_USAGE]);
  });

  it('runs as a process and stops on SIGTERM', async () => {
    // vite-node runs the TypeScript source as a script (after build: node dist/lib/testing/fake-upstream.cli.js).
    const viteNode = join(dirname(createRequire(import.meta.url).resolve('vite-node/package.json')), 'vite-node.mjs');
    const script = fileURLToPath(new URL('./fake-upstream.cli.ts', import.meta.url));
    const child = spawn(process.execPath, [viteNode, '--script', script, '--port', '0', '--tokens', '2'], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    try {
      let stdout = '';
      const url = await new Promise<string>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`no "listening on" line; stdout: ${stdout}`)), 20_000);
        child.stdout.on('data', (chunk: Buffer) => {
          stdout += chunk.toString();
          const match = /listening on (http:\/\/127\.0\.0\.1:\d+\/v1)\n/.exec(stdout);
          if (match?.[1]) {
            clearTimeout(timer);
            resolve(match[1]);
          }
        });
        child.once('exit', (code) => reject(new Error(`exited early with ${code}`)));
      });
      const models = (await (await fetch(`${url}/models`)).json()) as { object: string };
      expect(models.object).toBe('list');
      child.kill('SIGTERM');
      const [code] = (await once(child, 'exit')) as [number | null];
      expect(code).toBe(0);
    } finally {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    }
  }, 30_000);
});
