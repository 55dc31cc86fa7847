/**
 * npm run bench -- [--quick] [--json out.json] [--rounds N] [--slice-s S] [--keep-logs]
 *
 * Starts everything it measures, measures it side by side in one run, stops everything, prints a
 * markdown report on stdout (progress goes to stderr), writes the JSON, an SVG chart and the
 * markdown next to it. Relative paths are resolved against the directory npm was run from.
 * Exits 0 whether the targets are met or not (it is a measurement); 1 when it could not run.
 */
import { mkdir, rm, writeFile } from 'node:fs/promises';
import { dirname, isAbsolute, join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { runBench } from './lib/bench.js';
import { svgChart } from './lib/chart.js';
import { ProcessGroup } from './lib/processes.js';
import { markdownReport } from './lib/report.js';
import { repoRoot } from './lib/stack.js';
import { type BenchOptions, SECTION_NAMES, type SectionName } from './lib/types.js';

const USAGE = `Usage: npm run bench -- [options]
  --quick           a few seconds per target (proves the harness works; numbers are rough)
  --json <path>     JSON output (default tools/bench/results/bench-<date>.json); the chart (.svg) and
                    the markdown (.md) are written next to it, with the same name
  --rounds <n>      slices per target per concurrency (default 8, quick 1)
  --slice-s <s>     seconds per wrk slice (default 1)
  --warmup-s <s>    discarded warm-up per target per concurrency (default 1, quick 0)
  --streams <n>     concurrent streams of the stall check (default 512)
  --keep-logs       keep the work dir with every process's log
  --only <list>     comma-separated sections to run: throughput,streaming,coalescing,llama (default all;
                    the others are reported as skipped, their targets as not met)
  --help

Environment: BENCH_API_NODE_ARGS adds node options to the API under test, e.g.
  BENCH_API_NODE_ARGS='--cpu-prof --cpu-prof-dir=/tmp/prof' npm run bench -- --only throughput
`;

function positiveInt(name: string, value: string | undefined, fallback: number, min = 1): number {
  if (value === undefined) return fallback;
  const parsed = Number(value);
  if (!Number.isInteger(parsed) || parsed < min) throw new Error(`--${name} must be an integer >= ${min}`);
  return parsed;
}

function parseOnly(value: string | undefined): ReadonlySet<SectionName> {
  if (value === undefined) return new Set(SECTION_NAMES);
  const names = value.split(',').map((x) => x.trim()).filter(Boolean);
  for (const name of names) {
    if (!(SECTION_NAMES as readonly string[]).includes(name)) throw new Error(`--only: unknown section "${name}" (${SECTION_NAMES.join(', ')})`);
  }
  return new Set(names as SectionName[]);
}

function parseOptions(argv: readonly string[]): BenchOptions | undefined {
  const { values } = parseArgs({
    args: [...argv],
    strict: true,
    options: {
      quick: { type: 'boolean', default: false },
      json: { type: 'string' },
      rounds: { type: 'string' },
      'slice-s': { type: 'string' },
      'warmup-s': { type: 'string' },
      streams: { type: 'string' },
      'keep-logs': { type: 'boolean', default: false },
      only: { type: 'string' },
      help: { type: 'boolean', default: false },
    },
  });
  if (values.help) {
    process.stdout.write(USAGE);
    return undefined;
  }
  const quick = values.quick === true;
  // npm sets INIT_CWD to the directory the command was typed in (the nx target runs from the root).
  const base = process.env['INIT_CWD'] ?? process.cwd();
  const stamp = new Date().toISOString().replace(/[:.]/g, '-');
  const json = values.json ?? join(repoRoot, 'tools/bench/results', `bench-${stamp}.json`);
  const rounds = positiveInt('rounds', values.rounds, quick ? 1 : 8);
  return {
    quick,
    jsonPath: isAbsolute(json) ? json : resolve(base, json),
    rounds,
    sliceS: positiveInt('slice-s', values['slice-s'], 1),
    warmupS: positiveInt('warmup-s', values['warmup-s'], quick ? 0 : 1, 0),
    concurrency: [1, 16, 64],
    rounds20: quick ? 1 : Math.max(1, Math.min(rounds, 4)),
    streamSliceMs: quick ? 400 : 1_500,
    llamaSliceMs: quick ? 800 : 3_000,
    streams: positiveInt('streams', values.streams, 512),
    coalesce: 100,
    keepLogs: values['keep-logs'] === true,
    only: parseOnly(values.only),
  };
}

async function main(): Promise<number> {
  let options: BenchOptions | undefined;
  try {
    options = parseOptions(process.argv.slice(2));
  } catch (error) {
    process.stderr.write(`${error instanceof Error ? error.message : String(error)}\n${USAGE}`);
    return 2;
  }
  if (!options) return 0;
  const group = new ProcessGroup();
  let workDir: string | undefined;
  let stopping: Promise<unknown> | undefined;
  const interrupt = (signal: NodeJS.Signals): void => {
    if (stopping) {
      group.killAllSync();
      process.exit(130);
    }
    process.stderr.write(`\n${signal}: stopping everything the bench started...\n`);
    stopping = group
      .shutdown(2_000)
      .then(() => (workDir && !options.keepLogs ? rm(workDir, { recursive: true, force: true }) : undefined))
      .catch(() => undefined);
    void stopping.finally(() => process.exit(130));
  };
  process.on('SIGINT', interrupt);
  process.on('SIGTERM', interrupt);
  process.on('SIGHUP', interrupt);
  process.on('exit', () => group.killAllSync());

  const log = (line: string): void => {
    process.stderr.write(`[bench ${new Date().toISOString().slice(11, 19)}] ${line}\n`);
  };
  try {
    log(`mode: ${options.quick ? 'quick' : 'full'}; output: ${options.jsonPath}`);
    const result = await runBench(options, group, log, (dir) => (workDir = dir));
    const base = options.jsonPath.replace(/\.json$/i, '');
    const chartPath = `${base}.svg`;
    const markdown = markdownReport(result, { json: options.jsonPath, chart: chartPath });
    await mkdir(dirname(options.jsonPath), { recursive: true });
    await writeFile(options.jsonPath, `${JSON.stringify(result, null, 2)}\n`);
    await writeFile(chartPath, svgChart(result));
    // The same markdown as stdout, without the prefixes a task runner may add to stdout lines.
    await writeFile(`${base}.md`, markdown);
    process.stdout.write(markdown);
    const met = result.targets.filter((t) => t.met).length;
    log(`${met}/${result.targets.length} targets met (exit 0: a measurement, not a test)`);
    return 0;
  } catch (error) {
    if (stopping) {
      await stopping;
      return 130;
    }
    log(`the bench could not run: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}`);
    if (workDir) log(`logs of every process it started: ${workDir}/logs`);
    return 1;
  } finally {
    await group.shutdown(2_000);
  }
}

main().then(
  (code) => process.exit(code),
  (error: unknown) => {
    process.stderr.write(`${String(error)}\n`);
    process.exit(1);
  },
);
