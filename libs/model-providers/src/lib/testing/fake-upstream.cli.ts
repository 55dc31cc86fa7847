/**
 * Starts the fake OpenAI-compatible upstream from the command line (after build):
 *
 *   node libs/model-providers/dist/lib/testing/fake-upstream.cli.js --port 8000 --latency-ms 5 --tokens 16
 *
 * Prints `listening on <url>` (the base URL, ending in /v1) once it accepts connections, sends
 * `ready` to a parent process (PM2 `wait_ready`), and closes on SIGINT/SIGTERM.
 */
import { realpathSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { startFakeUpstream } from './fake-upstream.js';
import type { FakeUpstream, FakeUpstreamOptions } from './fake-upstream.js';

export const FAKE_UPSTREAM_CLI_USAGE = `Usage: fake-upstream [options]
  --host <host>                 interface to listen on (default 127.0.0.1)
  --port <port>                 port (default 0: a free port)
  --latency-ms <ms>             delay before the first response byte (default 0)
  --tokens <n>                  content tokens per reply (default 16)
  --inter-token-delay-ms <ms>   delay between stream chunks (default 0)
  --api-key <key>               require Authorization: Bearer <key>
  --help                        show this help
`;

function nonNegativeInteger(name: string, value: string | undefined): number | undefined {
  if (value === undefined) return undefined;
  const parsed = Number(value);
  if (!/^\d+$/.test(value) || !Number.isSafeInteger(parsed)) {
    throw new Error(`--${name} must be a non-negative integer, got "${value}"`);
  }
  return parsed;
}

/** Parses the CLI arguments (without `node` and the script path). Throws on unknown or invalid options. */
export function parseFakeUpstreamArgs(argv: readonly string[]): FakeUpstreamOptions & { readonly help: boolean } {
  const { values } = parseArgs({
    args: [...argv],
    strict: true,
    allowPositionals: false,
    options: {
      host: { type: 'string' },
      port: { type: 'string' },
      'latency-ms': { type: 'string' },
      tokens: { type: 'string' },
      'inter-token-delay-ms': { type: 'string' },
      'api-key': { type: 'string' },
      help: { type: 'boolean', default: false },
    },
  });
  const port = nonNegativeInteger('port', values.port);
  if (port !== undefined && port > 65_535) throw new Error(`--port must be at most 65535, got ${port}`);
  const options: FakeUpstreamOptions & { help: boolean } = {
    help: values.help === true,
    ...(values.host !== undefined && { host: values.host }),
    ...(port !== undefined && { port }),
    ...optional('latencyMs', nonNegativeInteger('latency-ms', values['latency-ms'])),
    ...optional('tokens', nonNegativeInteger('tokens', values.tokens)),
    ...optional('interTokenDelayMs', nonNegativeInteger('inter-token-delay-ms', values['inter-token-delay-ms'])),
    ...(values['api-key'] !== undefined && { apiKey: values['api-key'] }),
  };
  return options;
}

function optional<K extends string>(key: K, value: number | undefined): Partial<Record<K, number>> {
  return value === undefined ? {} : ({ [key]: value } as Record<K, number>);
}

/** Starts the upstream from CLI arguments and prints `listening on <url>`. */
export async function runFakeUpstreamCli(
  argv: readonly string[],
  write: (line: string) => void = (line) => process.stdout.write(line),
): Promise<FakeUpstream | undefined> {
  const { help, ...options } = parseFakeUpstreamArgs(argv);
  if (help) {
    write(FAKE_UPSTREAM_CLI_USAGE);
    return undefined;
  }
  const upstream = await startFakeUpstream(options);
  write(`listening on ${upstream.url}\n`);
  return upstream;
}

function isMain(): boolean {
  const script = process.argv[1];
  if (!script) return false;
  try {
    return realpathSync(script) === realpathSync(fileURLToPath(import.meta.url));
  } catch {
    return false;
  }
}

if (isMain()) {
  runFakeUpstreamCli(process.argv.slice(2)).then(
    (upstream) => {
      if (!upstream) return;
      process.send?.('ready');
      const stop = (): void => {
        upstream.close().then(
          () => process.exit(0),
          () => process.exit(1),
        );
      };
      process.once('SIGINT', stop);
      process.once('SIGTERM', stop);
    },
    (error: unknown) => {
      process.stderr.write(`fake-upstream: ${error instanceof Error ? error.message : String(error)}\n${FAKE_UPSTREAM_CLI_USAGE}`);
      process.exit(2);
    },
  );
}
