import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { apiMain, apiNodeArgs, modelsDir, repoRoot } from '../support/paths.js';

/**
 * How the real server process (apps/inference-api/dist/main.js) refuses a bad configuration: one
 * line on stderr naming what is wrong, exit code 1, no stack trace, no secret; and `--check-config`,
 * which checks the same without starting (what ecosystem.config.js runs before PM2 starts or
 * reloads workers).
 */

interface Run {
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

async function run(env: Record<string, string>, args: string[] = []): Promise<Run> {
  const child = spawn(process.execPath, [...apiNodeArgs, apiMain, ...args], {
    cwd: repoRoot,
    // No inherited configuration: only what the case sets (and the shared built-in model folder).
    env: { PATH: process.env['PATH'] ?? '', MODELS_DIR: modelsDir, LOG_LEVEL: 'warn', HOST: '127.0.0.1', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
  child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  const timer = setTimeout(() => child.kill('SIGKILL'), 60_000);
  const [code] = (await once(child, 'exit')) as [number | null];
  clearTimeout(timer);
  return { code, stdout, stderr };
}

/** Exit 1 with one line on stderr (plus the newline), no stack trace, nothing on stdout. */
function expectOneLineRefusal(result: Run, pattern: RegExp): void {
  expect(result.code, result.stderr + result.stdout).toBe(1);
  expect(result.stderr.trim().split('\n'), result.stderr).toHaveLength(1);
  expect(result.stderr).toMatch(pattern);
  expect(result.stderr + result.stdout).not.toMatch(/\n\s+at /);
}

describe('boot errors of the server process', () => {
  let dir: string;
  let models: string;

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'infer-boot-'));
    models = join(dir, 'models.yaml');
    await writeFile(models, 'models:\n  - name: m\n    deployments:\n      - provider: openai-compatible\n        baseUrl: http://127.0.0.1:9/v1\n        model: fake\n');
  });

  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('--check-config: OK with one line, or the same refusal as a start', async () => {
    const ok = await run({ MODELS_FILE: models }, ['--check-config']);
    expect(ok.code, ok.stderr).toBe(0);
    expect(ok.stdout).toBe('configuration OK: 1 model(s), 1 deployment(s)\n');
    expectOneLineRefusal(await run({ MODELS_FILE: models, LOG_LEVEL: 'verbose' }, ['--check-config']), /LOG_LEVEL must be equal to one of the allowed values/);
  });

  it('a models file that is missing, or whose deployment options are wrong: one line naming it', async () => {
    expectOneLineRefusal(await run({ MODELS_FILE: join(dir, 'missing.yaml'), PORT: '0' }), /MODELS_FILE .*missing\.yaml: cannot be read \(ENOENT\)/);
    const wrong = join(dir, 'wrong.yaml');
    await writeFile(wrong, 'models:\n  - name: m\n    deployments:\n      - provider: openai-compatible\n        baseUrl: http://127.0.0.1:9/v1\n        model: fake\n        timeoutMs: soon\n');
    expectOneLineRefusal(await run({ MODELS_FILE: wrong, PORT: '0' }), /models\[0\]\.deployments\[0\]\.timeoutMs must be integer/);
    expectOneLineRefusal(await run({ MODELS_FILE: wrong }, ['--check-config']), /timeoutMs must be integer/);
    // What the provider itself checks when it is made (not the schema): an API key variable that is not set.
    const keyed = join(dir, 'keyed.yaml');
    await writeFile(keyed, 'models:\n  - name: m\n    deployments:\n      - provider: openai-compatible\n        baseUrl: http://127.0.0.1:9/v1\n        model: fake\n        apiKeyEnv: INFER_E2E_UNSET_KEY\n');
    expectOneLineRefusal(await run({ MODELS_FILE: keyed }, ['--check-config']), /apiKeyEnv: the environment variable INFER_E2E_UNSET_KEY is not set/);
    expectOneLineRefusal(await run({ MODELS_FILE: keyed, PORT: '0' }), /INFER_E2E_UNSET_KEY is not set/);
    expect((await run({ MODELS_FILE: keyed, INFER_E2E_UNSET_KEY: 'sk-x' }, ['--check-config'])).code).toBe(0);
  });

  it('REDIS_URL and TRUST_PROXY are checked at once, a Redis password never shown', async () => {
    const redis = await run({ MODELS_FILE: models, PORT: '0', REDIS_URL: 'redis://default:S3cretPass@127.0.0.1:63790x' });
    expectOneLineRefusal(redis, /REDIS_URL must be redis\[s\]:\/\//);
    expect(redis.stderr + redis.stdout).not.toContain('S3cretPass');
    expectOneLineRefusal(await run({ MODELS_FILE: models, PORT: '0', TRUST_PROXY: 'garbage' }), /TRUST_PROXY must be .*"garbage"/);
  });

  it('a port in use or a host that does not resolve: one line naming HOST and PORT', async () => {
    const taken = createServer();
    await new Promise<void>((resolve) => taken.listen(0, '127.0.0.1', resolve));
    const port = (taken.address() as { port: number }).port;
    try {
      expectOneLineRefusal(await run({ MODELS_FILE: models, PORT: String(port) }), new RegExp(`Cannot listen on 127\\.0\\.0\\.1:${port} \\(HOST, PORT\\): EADDRINUSE`));
    } finally {
      taken.close();
    }
    expectOneLineRefusal(await run({ MODELS_FILE: models, PORT: '0', HOST: 'no.such.host.invalid' }), /Cannot listen on no\.such\.host\.invalid:0 \(HOST, PORT\): (ENOTFOUND|EAI_AGAIN)/);
  });
});
