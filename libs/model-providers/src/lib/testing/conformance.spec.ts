import { spawn } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { ModelProviderError } from '../contract/errors.js';
import {
  MODEL_PROVIDER_CONFORMANCE_CASES,
  captureError,
  collectStream,
  expectValidStream,
  runModelProviderConformance,
  withinMs,
} from './conformance.js';
import { ScriptedProvider } from './scripted-provider.js';

// The kit itself, against an in-memory provider (no HTTP involved).
runModelProviderConformance({
  name: 'scripted provider',
  create: () => new ScriptedProvider({ slots: 3 }),
  deterministic: true,
  capacityProbe: 8,
});

runModelProviderConformance({
  name: 'scripted provider, chat only and without streaming',
  create: () => new ScriptedProvider({ capabilities: { completion: false, streaming: false } }),
  skip: ['concurrency'],
});

describe('conformance helpers', () => {
  it('collectStream gathers parts, deltas, text and the finish part', async () => {
    const collected = await collectStream(new ScriptedProvider({ tokens: 3 }).streamComplete({ prompt: 'p' }));
    expect(collected.deltas).toHaveLength(3);
    expect(collected.text).toBe(collected.deltas.join(''));
    expect(collected.parts.at(-1)).toBe(collected.finish);
    expect(collected.finish).toMatchObject({ type: 'finish', finishReason: 'stop', usage: { completionTokens: 3 } });
    expect(() => expectValidStream(collected)).not.toThrow();
    expect(() => expectValidStream({ ...collected, parts: collected.parts.slice(0, -1) })).toThrow();
  });

  it('captureError returns the thrown error, and fails when nothing is thrown', async () => {
    const error = await captureError(() => new ScriptedProvider().chat({ messages: [] }, { signal: AbortSignal.abort() }));
    expect(error).toBeInstanceOf(ModelProviderError);
    await expect(captureError(() => 1)).rejects.toThrow(/Expected the operation to throw/);
  });

  it('withinMs rejects with a clear message on timeout', async () => {
    await expect(withinMs(new Promise(() => undefined), 10, 'the thing')).rejects.toThrow('the thing did not settle within 10 ms');
  });

  it('rejects unknown case ids in skip', () => {
    expect(() => runModelProviderConformance({ name: 'x', create: () => new ScriptedProvider(), skip: ['nope'] })).toThrow(
      /unknown case "nope"/,
    );
  });
});

interface JsonReport {
  testResults: Array<{ assertionResults: Array<{ ancestorTitles: string[]; title: string; status: string }> }>;
}

describe('the kit catches providers that break the contract', () => {
  it('fails exactly the cases each deliberate bug breaks', async () => {
    const libRoot = fileURLToPath(new URL('../../../', import.meta.url));
    const vitest = join(dirname(createRequire(import.meta.url).resolve('vitest/package.json')), 'vitest.mjs');
    const dir = await mkdtemp(join(tmpdir(), 'conformance-'));
    const output = join(dir, 'report.json');
    try {
      const child = spawn(
        process.execPath,
        [vitest, 'run', 'src/lib/testing/conformance.broken.spec.ts', '--reporter=json', `--outputFile=${output}`],
        { cwd: libRoot, env: { ...process.env, CONFORMANCE_BROKEN_FIXTURE: '1' }, stdio: 'ignore' },
      );
      await new Promise((resolve) => child.once('exit', resolve));
      const report = JSON.parse(await readFile(output, 'utf8')) as JsonReport;
      const failed = new Map<string, Set<string>>();
      const passed = new Map<string, Set<string>>();
      for (const result of report.testResults.flatMap((r) => r.assertionResults)) {
        const variant = (result.ancestorTitles.at(-1) ?? '').replace('model provider conformance: ', '');
        const id = /^\[([a-z-]+)\]/.exec(result.title)?.[1] ?? result.title;
        const bucket = result.status === 'passed' ? passed : failed;
        if (!bucket.has(variant)) bucket.set(variant, new Set());
        bucket.get(variant)?.add(id);
      }
      const failures = (variant: string): string[] => [...(failed.get(variant) ?? [])].sort();

      expect(failures('correct')).toEqual([]);
      expect(passed.get('correct')?.size).toBe(MODEL_PROVIDER_CONFORMANCE_CASES.length);
      expect(failures('chat-only')).toEqual([]);
      expect(failures('ignores-abort')).toEqual(expect.arrayContaining(['pre-aborted', 'abort-mid-stream']));
      expect(failures('no-finish')).toEqual(expect.arrayContaining(['stream-chat', 'stream-completion']));
      expect(failures('ignores-max-tokens')).toEqual(expect.arrayContaining(['chat', 'completion', 'max-tokens']));
      expect(failures('leaks-on-abort')).toEqual(expect.arrayContaining(['no-leak-after-abort']));
      expect(failures('stream-mismatch')).toEqual(['concurrency', 'stream-chat', 'stream-completion']);
      expect(failures('wrong-not-supported')).toEqual(['capabilities']);
      expect(failures('tool-call-without-id')).toEqual(['tools']);
      expect(failures('embeddings-one-short')).toEqual(['embeddings']);
      expect(failures('logprobs-dropped-in-stream')).toEqual(['logprobs']);
      for (const variant of ['ignores-abort', 'no-finish', 'ignores-max-tokens', 'leaks-on-abort', 'stream-mismatch']) {
        expect(passed.get(variant), variant).toEqual(expect.any(Set));
        const unaffected = variant === 'ignores-max-tokens' ? ['metadata', 'pre-aborted'] : ['metadata', 'chat', 'completion'];
        for (const id of unaffected) expect(passed.get(variant)?.has(id), `${variant}: ${id} passes`).toBe(true);
      }
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  }, 120_000);
});
