/**
 * The benchmark run: starts the stack, measures every target side by side (alternating short
 * slices), stops everything, and returns the result (targets evaluated by ./targets.ts).
 */
import { spawnSync } from 'node:child_process';
import { mkdir, mkdtemp, rm, stat, writeFile } from 'node:fs/promises';
import { cpus, hostname, release, tmpdir, totalmem } from 'node:os';
import { join } from 'node:path';
import {
  DEFAULT_TINY_LLAMA_SPEC,
  ensureTinyLlamaGguf,
  LARGE_TINY_LLAMA_SPEC,
  tinyLlamaGgufFileName,
  type TinyLlamaSpec,
} from '@infer/model-providers';
import { Histogram } from './histogram.js';
import { keepAliveAgent, postJson, timeStream, type StreamTiming } from './http-client.js';
import { cpuTimeNs, memoryOf, type ProcessGroup, sleep } from './processes.js';
import {
  type CpuPlan,
  type HttpServer,
  repoRoot,
  startApi,
  startBare,
  startFakeUpstream,
  startPortkey,
  startRawLlama,
} from './stack.js';
import { evaluateTargets } from './targets.js';
import type {
  BenchOptions,
  BenchResult,
  CoalescingSection,
  LlamaModelResult,
  LlamaRun,
  LlamaSection,
  MachineInfo,
  ManyStreamsResult,
  MemoryEntry,
  MemorySection,
  Meta,
  Section,
  SectionName,
  StreamingSection,
  StreamTargetResult,
  TargetCheck,
  ThroughputCell,
  ThroughputSection,
} from './types.js';
import { runWrk, UNIQUE_MARKER, writeWrkScript, type WrkRequestSpec } from './wrk.js';

export type Log = (line: string) => void;

const CHAT = '/v1/chat/completions';
const STREAM_TOKENS = 16;
const STREAM_DELAY_MS = 1;
const MANY_TOKENS = 32;
const MANY_DELAY_MS = 20;
const COALESCE_LATENCY_MS = 500;
const LLAMA = { threads: 1, contextSize: 1024, sequences: 1, prompt: 'Once upon a time', route: '/v1/completions' } as const;

const LOGGING =
  'API under test: NODE_ENV=production, LOG_LEVEL=warn, LOG_REQUESTS=false (no per-request log lines; warnings and errors still logged), stdout to a file. ' +
  "The row 'API miss, request logs on' runs a second API process with LOG_LEVEL=info, LOG_REQUESTS=true (pino JSON to a file) to show what request logging costs.";

interface HttpTarget {
  readonly id: string;
  readonly label: string;
  /** The process whose CPU time is charged to the target (the server under test). */
  readonly pid: number;
  readonly spec: WrkRequestSpec;
  /** Checked once before the load: status 200 (and X-Cache for the cache rows). */
  readonly expectCache?: 'HIT' | 'MISS';
}

function chatBody(model: string, content: string, extra: Record<string, unknown> = {}): string {
  return JSON.stringify({ model, messages: [{ role: 'user', content }], max_tokens: 16, temperature: 0, ...extra });
}

function sameLengthPrefix(tag: string, n: number): string {
  // 6 characters + '-' + 9 digits: the length of UNIQUE_MARKER.
  return `${tag.slice(0, 6).padEnd(6, 'x')}-${String(n).padStart(9, '0')}`;
}

function portkeyHeaders(upstream: HttpServer): Record<string, string> {
  return { 'x-portkey-provider': 'openai', 'x-portkey-custom-host': `${upstream.url}/v1`, authorization: 'Bearer bench' };
}

function machineInfo(): MachineInfo {
  const list = cpus();
  return {
    cpuModel: list[0]?.model.trim() ?? 'unknown',
    cores: list.length,
    memoryGiB: Math.round((totalmem() / 2 ** 30) * 10) / 10,
    kernel: release(),
    node: process.version,
    hostname: hostname(),
  };
}

function cpuPlan(log: Log): { plan: CpuPlan; pinned: boolean; description: string } {
  const cores = cpus().length;
  const taskset = spawnSync('taskset', ['-p', String(process.pid)], { encoding: 'utf8' }).status === 0;
  if (!taskset || cores < 2) {
    const why = !taskset ? 'taskset is not available' : 'only one CPU';
    log(`pinning: off (${why})`);
    return { plan: { load: undefined, server: undefined }, pinned: false, description: `not pinned (${why})` };
  }
  // The bench process itself (its HTTP clients) shares the load generator's core.
  spawnSync('taskset', ['-a', '-p', '-c', '0', String(process.pid)]);
  return {
    plan: { load: 0, server: 1 },
    pinned: true,
    description:
      'server under test pinned to CPU 1 (taskset -c 1); load generator (wrk, 1 thread), the bench\'s own clients ' +
      'and the fake upstreams pinned to CPU 0 (taskset -c 0)',
  };
}

function wrkVersion(): string {
  const out = spawnSync('wrk', ['-v'], { encoding: 'utf8' });
  const text = `${out.stdout ?? ''}${out.stderr ?? ''}`;
  const match = /wrk\s+(\S+)/.exec(text);
  if (out.error) throw new Error('wrk is not installed (bash tools/scripts/install-system-deps.sh installs it)');
  return match ? `wrk ${match[1]}` : 'wrk';
}

function median(values: readonly number[]): number {
  if (values.length === 0) return Number.NaN;
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 === 1 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

function ms(micros: number): number {
  return Math.round(micros) / 1000;
}

function round(value: number, digits = 3): number {
  const f = 10 ** digits;
  return Math.round(value * f) / f;
}

async function guard<T extends object>(name: string, log: Log, procs: ProcessGroup, run: () => Promise<T>): Promise<Section<T>> {
  try {
    return await run();
  } catch (error) {
    // Interrupted: do not go on with the next phase.
    if (procs.stopping) throw error;
    const message = error instanceof Error ? error.message : String(error);
    log(`${name}: FAILED: ${message}`);
    return { error: message };
  }
}

/**
 * Runs the whole bench. `onWorkDir` learns the temporary directory (logs, scripts) as soon as it
 * exists, so that an interrupted run can remove it.
 */
export async function runBench(
  options: BenchOptions,
  procs: ProcessGroup,
  log: Log,
  onWorkDir: (dir: string) => void = () => undefined,
): Promise<BenchResult> {
  const began = performance.now();
  const loadGenerator = `${wrkVersion()} (1 thread, keep-alive connections = concurrency); SSE, coalescing and llama clients: node:http in the bench process`;
  const cpu = cpuPlan(log);
  const workDir = await mkdtemp(join(tmpdir(), 'infer-bench-'));
  onWorkDir(workDir);
  const logDir = join(workDir, 'logs');
  await mkdir(logDir);
  procs.configure({ logDir, taskset: cpu.pinned });
  const agent = keepAliveAgent(2_048);
  const { load, server } = cpu.plan;

  log(`work dir: ${workDir}`);
  log('starting fake upstreams');
  const [u0, u20, uStream, uMany, uCoalesce] = await Promise.all([
    startFakeUpstream(procs, 'upstream-0ms', load, { latencyMs: 0 }),
    startFakeUpstream(procs, 'upstream-20ms', load, { latencyMs: 20 }),
    startFakeUpstream(procs, 'upstream-stream', load, { tokens: STREAM_TOKENS, interTokenDelayMs: STREAM_DELAY_MS }),
    startFakeUpstream(procs, 'upstream-many', load, { tokens: MANY_TOKENS, interTokenDelayMs: MANY_DELAY_MS }),
    startFakeUpstream(procs, 'upstream-coalesce', load, { latencyMs: COALESCE_LATENCY_MS }),
  ]);

  // The bare servers answer exactly what the fake upstream answers to the bench request.
  const sampleBody = chatBody('fake', `bench ${sameLengthPrefix('sample', 1)}`);
  const sample = await postJson(agent, `${u0.url}${CHAT}`, sampleBody);
  if (sample.status !== 200) throw new Error(`fake upstream answered ${sample.status}: ${sample.text}`);
  const replyFile = join(workDir, 'reply.json');
  await writeFile(replyFile, sample.text);

  const deployment = (name: string, upstream: HttpServer, extra = ''): string =>
    `  - name: ${name}\n    deployments:\n      - provider: openai-compatible\n        baseUrl: ${upstream.url}/v1\n        model: fake\n${extra}`;
  const gatewayYaml =
    'models:\n' +
    deployment('fake', u0) +
    deployment('fake-20ms', u20) +
    deployment('fake-stream', uStream) +
    // 512+ concurrent streams: one upstream connection each (the default pool is 128).
    deployment('fake-many', uMany, '        connections: 1024\n') +
    deployment('fake-coalesce', uCoalesce);
  // As PM2 runs a gateway worker (ecosystem.config.js): NODE_ENV=production.
  const apiEnv = { NODE_ENV: 'production', LOG_LEVEL: 'warn', LOG_REQUESTS: 'false', CACHE_ENABLED: 'true' };

  log('starting servers under test: API (3 configurations), bare node:http, bare Fastify, bare NestJS, Portkey');
  const [api, apiLogged, apiNoCache, bareHttp, bareFastify, bareNest] = await Promise.all([
    startApi(procs, 'api', server, {
      modelsYaml: gatewayYaml,
      workDir,
      env: apiEnv,
      // e.g. BENCH_API_NODE_ARGS='--cpu-prof --cpu-prof-dir=/tmp/prof' to profile the API under the bench's load.
      nodeArgs: (process.env['BENCH_API_NODE_ARGS'] ?? '').split(' ').filter(Boolean),
    }),
    startApi(procs, 'api-logged', server, {
      modelsYaml: 'models:\n' + deployment('fake', u0),
      workDir,
      env: { ...apiEnv, LOG_LEVEL: 'info', LOG_REQUESTS: 'true' },
    }),
    startApi(procs, 'api-nocache', server, { modelsYaml: 'models:\n' + deployment('fake', u0), workDir, env: { ...apiEnv, CACHE_ENABLED: 'false' } }),
    startBare(procs, 'http', server, replyFile),
    startBare(procs, 'fastify', server, replyFile),
    startBare(procs, 'nest', server, replyFile),
  ]);
  let portkey: HttpServer | undefined;
  try {
    portkey = await startPortkey(procs, server);
  } catch (error) {
    log(`Portkey did not start: ${error instanceof Error ? error.message : String(error)}`);
  }

  // Let the fresh processes finish starting (JIT, start-up garbage, Portkey's spinner) before any slice.
  await sleep(options.quick ? 500 : 3_000);
  const gatewayAtStart = memoryOf(api.process.pid);

  const meta: Omit<Meta, 'durationS'> = {
    date: new Date().toISOString(),
    mode: options.quick ? 'quick' : 'full',
    machine: machineInfo(),
    pinning: { enabled: cpu.pinned, serverCpu: server, loadCpu: load, description: cpu.description },
    loadGenerator,
    logging: LOGGING,
    method:
      `Every number is from one run. Throughput: per concurrency, ${options.rounds} slice(s) of ${options.sliceS} s per target ` +
      `(${options.rounds20} for the 20 ms upstream), targets alternating A B C ... then ... C B A` +
      (options.warmupS > 0 ? `, after a ${options.warmupS} s discarded warm-up each` : ', no warm-up') +
      '; latency percentiles from the merged wrk histograms (1 µs buckets), one sample per response: the synthetic samples ' +
      "wrk 4 adds for coordinated omission (stats_correct) are removed exactly, and the load is closed-loop, so treat " +
      'high-concurrency p99 as a lower bound. Miss-path requests are all unique (same size), so the response cache misses.',
    requestBytes: Buffer.byteLength(sampleBody),
    upstreamReplyBytes: Buffer.byteLength(sample.text),
    logDir: options.keepLogs ? logDir : undefined,
  };

  const skipped = <T extends object>(name: SectionName, run: () => Promise<Section<T>>): Promise<Section<T>> =>
    options.only.has(name) ? run() : Promise.resolve({ error: 'skipped (--only)' });
  const throughput = await skipped('throughput', () => guard('throughput', log, procs, () =>
    measureThroughput(options, procs, workDir, agent, load, log, { u0, u20, api, apiLogged, apiNoCache, bareHttp, bareFastify, bareNest, portkey }),
  ));
  const streaming = await skipped('streaming', () => guard('streaming', log, procs, () => measureStreaming(options, agent, log, { uStream, uMany, api, portkey })));
  const coalescing = await skipped('coalescing', () => guard('coalescing', log, procs, () => measureCoalescing(options, agent, log, { api, uCoalesce })));
  const memory = await guard('memory', log, procs, async (): Promise<MemorySection> => {
    const entry = (name: string, s: HttpServer | undefined): MemoryEntry | null => {
      const m = s ? memoryOf(s.process.pid) : undefined;
      return s && m
        ? {
            process: name,
            pid: s.process.pid,
            rssMiB: round(m.rssBytes / 2 ** 20, 1),
            peakRssMiB: round(m.peakRssBytes / 2 ** 20, 1),
            privateMiB: m.privateBytes === undefined ? null : round(m.privateBytes / 2 ** 20, 1),
          }
        : null;
    };
    const others = [
      entry('API, request logs on', apiLogged),
      entry('API, cache disabled', apiNoCache),
      entry('bare NestJS', bareNest),
      entry('bare node:http', bareHttp),
      entry('bare Fastify', bareFastify),
      entry('Portkey', portkey),
    ].filter((e): e is MemoryEntry => e !== null);
    const gateway = entry('API gateway worker (right after the last gateway load)', api);
    // The same worker after a while without requests: V8's memory reducer gives the garbage of the
    // load back once allocation stays low for a while (often 20-30 s, sometimes longer).
    const loaded = options.only.has('throughput') || options.only.has('streaming') || options.only.has('coalescing');
    const idleS = !loaded ? 0 : options.quick ? 2 : 30;
    await sleep(idleS * 1000);
    const settled = memoryOf(api.process.pid);
    return {
      gateway,
      gatewayAtStartMiB: gatewayAtStart ? round(gatewayAtStart.rssBytes / 2 ** 20, 1) : null,
      gatewayIdle: settled ? { afterS: idleS, rssMiB: round(settled.rssBytes / 2 ** 20, 1) } : null,
      others,
    };
  });

  // The gateway side is done: free the server core for the llama.cpp comparison.
  await procs.stopAll();
  const llama = await skipped('llama', () => guard('llama', log, procs, () => measureLlama(options, procs, workDir, agent, server, log)));
  await procs.stopAll();
  agent.destroy();
  if (!options.keepLogs) await rm(workDir, { recursive: true, force: true });

  const partial = { throughput, streaming, coalescing, llama, memory };
  return {
    meta: { ...meta, durationS: round((performance.now() - began) / 1000, 1) },
    ...partial,
    targets: evaluateTargets(partial, options),
  };
}

// ---------------------------------------------------------------------------------------------
// Throughput (wrk)

interface ThroughputServers {
  readonly u0: HttpServer;
  readonly u20: HttpServer;
  readonly api: HttpServer;
  readonly apiLogged: HttpServer;
  readonly apiNoCache: HttpServer;
  readonly bareHttp: HttpServer;
  readonly bareFastify: HttpServer;
  readonly bareNest: HttpServer;
  readonly portkey: HttpServer | undefined;
}

async function measureThroughput(
  options: BenchOptions,
  procs: ProcessGroup,
  workDir: string,
  agent: ReturnType<typeof keepAliveAgent>,
  loadCpu: number | undefined,
  log: Log,
  s: ThroughputServers,
): Promise<ThroughputSection> {
  const unique = (model: string): string => chatBody(model, `bench ${UNIQUE_MARKER}`);
  const miss = (id: string, label: string, server: HttpServer, model: string, headers: Record<string, string> = {}): HttpTarget => ({
    id,
    label,
    pid: server.process.pid,
    spec: { url: `${server.url}${CHAT}`, headers, body: unique(model), uniqueMarker: UNIQUE_MARKER },
  });
  const variants: { name: string; latencyMs: number; rounds: number; targets: HttpTarget[] }[] = [
    {
      name: 'upstream 0 ms',
      latencyMs: 0,
      rounds: options.rounds,
      targets: [
        miss('direct', 'fake upstream directly', s.u0, 'fake'),
        miss('bare-http', 'bare node:http, constant reply', s.bareHttp, 'fake'),
        miss('bare-fastify', 'bare Fastify, constant reply', s.bareFastify, 'fake'),
        miss('bare-nest', 'bare NestJS on Fastify, constant reply', s.bareNest, 'fake'),
        { ...miss('api-miss', 'API, cache miss (openai-compatible)', s.api, 'fake'), expectCache: 'MISS' },
        {
          id: 'api-hit',
          label: 'API, cache hit (same request)',
          pid: s.api.process.pid,
          spec: { url: `${s.api.url}${CHAT}`, headers: {}, body: chatBody('fake', `bench ${sameLengthPrefix('hit', 0)}`) },
          expectCache: 'HIT',
        },
        miss('api-nocache', 'API, cache disabled (openai-compatible)', s.apiNoCache, 'fake'),
        miss('api-miss-logged', 'API, cache miss, request logs on', s.apiLogged, 'fake'),
        ...(s.portkey ? [miss('portkey', 'Portkey gateway -> same upstream', s.portkey, 'fake', portkeyHeaders(s.u0))] : []),
      ],
    },
    {
      name: 'upstream 20 ms',
      latencyMs: 20,
      rounds: options.rounds20,
      targets: [
        miss('direct', 'fake upstream directly', s.u20, 'fake-20ms'),
        { ...miss('api-miss', 'API, cache miss (openai-compatible)', s.api, 'fake-20ms'), expectCache: 'MISS' },
        ...(s.portkey ? [miss('portkey', 'Portkey gateway -> same upstream', s.portkey, 'fake-20ms', portkeyHeaders(s.u20))] : []),
      ],
    },
  ];

  // Check every target once (and prime the cache entry of the hit row).
  const checks: TargetCheck[] = [];
  let cacheHitObserved = false;
  for (const variant of variants) {
    for (const target of variant.targets) {
      const body = target.spec.uniqueMarker ? target.spec.body.replace(target.spec.uniqueMarker, sameLengthPrefix('check', checks.length)) : target.spec.body;
      let response = await postJson(agent, target.spec.url, body, target.spec.headers);
      if (target.expectCache === 'HIT') response = await postJson(agent, target.spec.url, body, target.spec.headers);
      const xCache = response.headers['x-cache'];
      const ok = response.status === 200 && (target.expectCache === undefined || xCache === target.expectCache);
      if (target.expectCache === 'HIT' && xCache === 'HIT') cacheHitObserved = true;
      const detail = `${variant.name} / ${target.id}: HTTP ${response.status}, ${Buffer.byteLength(response.text)} bytes` + (target.expectCache ? `, X-Cache: ${String(xCache ?? '(none)')}` : '');
      checks.push({ target: `${variant.name} / ${target.id}`, ok, detail });
      log(`check ${ok ? 'ok  ' : 'FAIL'} ${detail}`);
    }
  }

  const cells: ThroughputCell[] = [];
  let slice = 0;
  const scripts = new Map<HttpTarget, string>();
  for (const variant of variants) {
    for (const target of variant.targets) {
      scripts.set(target, await writeWrkScript(join(workDir, `wrk-${variant.latencyMs}-${target.id}.lua`), target.spec));
    }
  }
  const outFile = join(workDir, 'wrk-out.json');
  const wrk = (target: HttpTarget, connections: number, durationS: number) =>
    runWrk({
      group: procs,
      cpu: loadCpu,
      script: scripts.get(target)!,
      url: target.spec.url,
      connections,
      durationS,
      outFile,
      prefix: `s${(slice++).toString(36).padStart(5, '0')}`,
    });

  for (const variant of variants) {
    for (const c of options.concurrency) {
      log(`throughput: ${variant.name}, c=${c}: ${variant.targets.map((t) => t.id).join(', ')}`);
      if (options.warmupS > 0) for (const target of variant.targets) await wrk(target, c, options.warmupS);
      const acc = new Map<
        HttpTarget,
        { hist: Histogram; requests: number; us: number; errors: number; slices: number; sliceRps: number[]; cpuNs: number | undefined }
      >();
      for (let round = 0; round < variant.rounds; round += 1) {
        const order = round % 2 === 0 ? variant.targets : [...variant.targets].reverse();
        for (const target of order) {
          const cpuBefore = cpuTimeNs(target.pid);
          const result = await wrk(target, c, options.sliceS);
          const cpuAfter = cpuTimeNs(target.pid);
          const a = acc.get(target) ?? { hist: new Histogram(), requests: 0, us: 0, errors: 0, slices: 0, sliceRps: [], cpuNs: 0 };
          a.cpuNs = cpuBefore === undefined || cpuAfter === undefined || a.cpuNs === undefined ? undefined : a.cpuNs + (cpuAfter - cpuBefore);
          a.sliceRps.push(Math.round(result.requests / (result.durationUs / 1e6)));
          a.hist.merge(result.histogram);
          a.requests += result.requests;
          a.us += result.durationUs;
          const e = result.errors;
          a.errors += e.connect + e.read + e.write + e.status + e.timeout;
          a.slices += 1;
          acc.set(target, a);
        }
      }
      const direct = acc.get(variant.targets[0]!)!;
      for (const target of variant.targets) {
        const a = acc.get(target)!;
        const p50 = a.hist.percentile(50);
        const p99 = a.hist.percentile(99);
        const isDirect = target === variant.targets[0];
        const cell: ThroughputCell = {
          variant: variant.name,
          target: target.id,
          label: target.label,
          concurrency: c,
          slices: a.slices,
          sliceRps: a.sliceRps,
          requests: a.requests,
          seconds: round(a.us / 1e6, 2),
          rps: Math.round(a.requests / (a.us / 1e6)),
          p50Ms: ms(p50),
          p99Ms: ms(p99),
          meanMs: ms(a.hist.mean),
          maxMs: ms(a.hist.max),
          errors: a.errors,
          cpuUsPerRequest: a.cpuNs === undefined || a.requests === 0 ? null : round(a.cpuNs / 1000 / a.requests, 1),
          addedP50Ms: isDirect ? null : ms(p50 - direct.hist.percentile(50)),
          addedP99Ms: isDirect ? null : ms(p99 - direct.hist.percentile(99)),
        };
        cells.push(cell);
        log(
          `  ${target.id.padEnd(16)} ${String(cell.rps).padStart(7)} req/s  p50 ${cell.p50Ms.toFixed(3)} ms  p99 ${cell.p99Ms.toFixed(3)} ms` +
            (cell.cpuUsPerRequest === null ? '' : `  ${cell.cpuUsPerRequest} µs CPU/req`) +
            (cell.errors > 0 ? `  errors ${cell.errors}` : ''),
        );
      }
    }
  }
  return {
    variants: variants.map((v) => ({ name: v.name, upstreamLatencyMs: v.latencyMs, targets: v.targets.map((t) => ({ id: t.id, label: t.label })) })),
    cells,
    checks,
    cacheHitObserved,
  };
}

// ---------------------------------------------------------------------------------------------
// Streaming

async function measureStreaming(
  options: BenchOptions,
  agent: ReturnType<typeof keepAliveAgent>,
  log: Log,
  s: { uStream: HttpServer; uMany: HttpServer; api: HttpServer; portkey: HttpServer | undefined },
): Promise<StreamingSection> {
  let n = 0;
  const body = (model: string, tokens = STREAM_TOKENS): string =>
    chatBody(model, `stream ${sameLengthPrefix('ttft', (n += 1))}`, {
      max_tokens: tokens,
      stream: true,
      stream_options: { include_usage: true },
    });
  const targets = [
    { id: 'direct', label: 'fake upstream directly', url: `${s.uStream.url}${CHAT}`, model: 'fake', headers: {} },
    { id: 'api', label: 'API (openai-compatible, cache miss)', url: `${s.api.url}${CHAT}`, model: 'fake-stream', headers: {} },
    ...(s.portkey ? [{ id: 'portkey', label: 'Portkey gateway', url: `${s.portkey.url}${CHAT}`, model: 'fake', headers: portkeyHeaders(s.uStream) }] : []),
  ];
  log(`streaming: time to first token, c=1, ${targets.map((t) => t.id).join(', ')}`);
  const single = keepAliveAgent(1);
  const acc = new Map(targets.map((t) => [t, { first: new Histogram(), total: new Histogram(), errors: 0 }]));
  // Warm-up: a few streams each.
  for (const t of targets) for (let i = 0; i < 20; i += 1) await timeStream(single, t.url, body(t.model), t.headers).catch(() => undefined);
  for (let round = 0; round < options.rounds; round += 1) {
    const order = round % 2 === 0 ? targets : [...targets].reverse();
    for (const t of order) {
      const a = acc.get(t)!;
      const until = performance.now() + options.streamSliceMs;
      do {
        try {
          const timing = await timeStream(single, t.url, body(t.model), t.headers);
          if (timing.status !== 200 || !timing.done || Number.isNaN(timing.firstTokenMs)) a.errors += 1;
          else {
            a.first.add(timing.firstTokenMs * 1000);
            a.total.add(timing.totalMs * 1000);
          }
        } catch {
          a.errors += 1;
        }
      } while (performance.now() < until);
    }
  }
  single.destroy();
  const direct = acc.get(targets[0]!)!;
  const firstToken: StreamTargetResult[] = targets.map((t) => {
    const a = acc.get(t)!;
    const isDirect = t === targets[0];
    const added = (h: Histogram, d: Histogram, p: number): number | null => (isDirect ? null : ms(h.percentile(p) - d.percentile(p)));
    return {
      target: t.id,
      label: t.label,
      samples: a.first.count,
      errors: a.errors,
      firstTokenP50Ms: ms(a.first.percentile(50)),
      firstTokenP99Ms: ms(a.first.percentile(99)),
      totalP50Ms: ms(a.total.percentile(50)),
      totalP99Ms: ms(a.total.percentile(99)),
      addedFirstTokenP50Ms: added(a.first, direct.first, 50),
      addedFirstTokenP99Ms: added(a.first, direct.first, 99),
      addedTotalP50Ms: added(a.total, direct.total, 50),
    };
  });
  for (const r of firstToken) {
    log(`  ${r.target.padEnd(8)} first token p50 ${r.firstTokenP50Ms} ms p99 ${r.firstTokenP99Ms} ms, total p50 ${r.totalP50Ms} ms (${r.samples} streams, ${r.errors} errors)`);
  }

  const many: ManyStreamsResult[] = [];
  for (const t of [
    { id: 'direct', label: 'fake upstream directly', url: `${s.uMany.url}${CHAT}`, model: 'fake', stats: s.uMany },
    { id: 'api', label: 'API (openai-compatible, cache miss)', url: `${s.api.url}${CHAT}`, model: 'fake-many', stats: s.uMany },
  ]) {
    log(`streaming: ${options.streams} concurrent streams, ${t.id}`);
    many.push(await manyStreams(options.streams, t, agent, (model) => body(model, MANY_TOKENS)));
    const r = many.at(-1)!;
    log(`  ${r.completed}/${r.streams} completed, ${r.stalled} stalled, ${r.failed} failed, max gap ${r.maxGapMs} ms, wall ${r.wallMs} ms`);
  }
  return { upstream: { tokens: STREAM_TOKENS, interTokenDelayMs: STREAM_DELAY_MS }, firstToken, many };
}

async function upstreamStats(upstream: HttpServer): Promise<{ requestCount: number; abortedStreams: number }> {
  const res = await fetch(`${upstream.url}/__fake/stats`);
  if (!res.ok) throw new Error(`GET /__fake/stats answered ${res.status} (rebuild @infer/model-providers)`);
  return (await res.json()) as { requestCount: number; abortedStreams: number };
}

async function manyStreams(
  count: number,
  t: { id: string; label: string; url: string; model: string; stats: HttpServer },
  agent: ReturnType<typeof keepAliveAgent>,
  body: (model: string) => string,
): Promise<ManyStreamsResult> {
  const expectedMs = MANY_TOKENS * MANY_DELAY_MS;
  const stallThresholdMs = Math.max(1_000, 25 * MANY_DELAY_MS);
  const before = await upstreamStats(t.stats).catch(() => undefined);
  const started = performance.now();
  const results = await Promise.all(
    Array.from({ length: count }, () =>
      timeStream(agent, t.url, body(t.model), {}, 30_000).then(
        (timing): StreamTiming | undefined => timing,
        () => undefined,
      ),
    ),
  );
  const wallMs = performance.now() - started;
  await sleep(50);
  const after = await upstreamStats(t.stats).catch(() => undefined);
  const gaps = new Histogram();
  const totals = new Histogram();
  const firsts = new Histogram();
  let completed = 0;
  let stalled = 0;
  let failed = 0;
  for (const r of results) {
    if (!r || r.status !== 200) {
      failed += 1;
      continue;
    }
    gaps.add(r.maxGapMs * 1000);
    totals.add(r.totalMs * 1000);
    firsts.add(r.firstTokenMs * 1000);
    if (r.done && r.contentEvents === MANY_TOKENS) completed += 1;
    if (!r.done || r.maxGapMs > stallThresholdMs) stalled += 1;
  }
  return {
    target: t.id,
    label: t.label,
    streams: count,
    completed,
    stalled,
    failed,
    stallThresholdMs,
    maxGapMs: ms(gaps.max),
    p99GapMs: ms(gaps.percentile(99)),
    firstTokenP99Ms: ms(firsts.percentile(99)),
    totalP50Ms: ms(totals.percentile(50)),
    totalP99Ms: ms(totals.percentile(99)),
    wallMs: round(wallMs, 1),
    expectedMs,
    upstreamAborted: before && after ? after.abortedStreams - before.abortedStreams : null,
  };
}

// ---------------------------------------------------------------------------------------------
// Coalescing

async function measureCoalescing(
  options: BenchOptions,
  agent: ReturnType<typeof keepAliveAgent>,
  log: Log,
  s: { api: HttpServer; uCoalesce: HttpServer },
): Promise<CoalescingSection> {
  log(`coalescing: ${options.coalesce} identical concurrent requests (upstream latency ${COALESCE_LATENCY_MS} ms)`);
  const body = chatBody('fake-coalesce', `coalesce ${Date.now()}-${process.pid}`);
  const before = await upstreamStats(s.uCoalesce);
  const started = performance.now();
  const responses = await Promise.all(
    Array.from({ length: options.coalesce }, () => postJson(agent, `${s.api.url}${CHAT}`, body).catch(() => undefined)),
  );
  const wallMs = performance.now() - started;
  const after = await upstreamStats(s.uCoalesce);
  const statuses: Record<string, number> = {};
  const xCache: Record<string, number> = {};
  const contents = new Set<string>();
  for (const r of responses) {
    const status = r ? String(r.status) : 'error';
    statuses[status] = (statuses[status] ?? 0) + 1;
    const cache = r ? String(r.headers['x-cache'] ?? '(none)') : '(none)';
    xCache[cache] = (xCache[cache] ?? 0) + 1;
    if (r?.status === 200) {
      try {
        contents.add(String((JSON.parse(r.text) as { choices: { message: { content: string } }[] }).choices[0]?.message.content));
      } catch {
        contents.add(r.text);
      }
    }
  }
  const upstreamCalls = after.requestCount - before.requestCount;
  log(`  upstream calls: ${upstreamCalls}; statuses ${JSON.stringify(statuses)}; X-Cache ${JSON.stringify(xCache)}`);
  return {
    requests: options.coalesce,
    upstreamLatencyMs: COALESCE_LATENCY_MS,
    upstreamCalls,
    statuses,
    xCache,
    identicalContent: contents.size === 1,
    wallMs: round(wallMs, 1),
  };
}

// ---------------------------------------------------------------------------------------------
// llama.cpp

async function measureLlama(
  options: BenchOptions,
  procs: ProcessGroup,
  workDir: string,
  agent: ReturnType<typeof keepAliveAgent>,
  serverCpu: number | undefined,
  log: Log,
): Promise<LlamaSection> {
  const dir = join(repoRoot, '.cache/bench');
  const models: { name: string; spec: TinyLlamaSpec; maxTokens: number; description: string }[] = [
    { name: 'tiny', spec: DEFAULT_TINY_LLAMA_SPEC, maxTokens: 128, description: 'built-in tiny-llama: 64 wide, 2 layers, F32' },
    { name: 'large', spec: LARGE_TINY_LLAMA_SPEC, maxTokens: 48, description: 'tiny-llama-large: 512 wide, 8 layers, F16' },
  ];
  log('llama.cpp: writing the GGUF files (first run only)');
  const files = await Promise.all(models.map((m) => ensureTinyLlamaGguf(join(dir, tinyLlamaGgufFileName(m.spec)), m.spec)));
  const yaml =
    'models:\n' +
    models
      .map(
        (m, i) =>
          `  - name: ${m.name}\n    deployments:\n      - provider: llama-cpp\n        modelPath: ${files[i]}\n` +
          `        threads: ${LLAMA.threads}\n        sequences: ${LLAMA.sequences}\n        contextSize: ${LLAMA.contextSize}\n` +
          // The raw runner evaluates the prompt afresh every time (it clears its sequence): so does the API,
          // so the comparison measures serving, not the prompt cache.
          `        promptCache: false\n`,
      )
      .join('');
  log('llama.cpp: starting the API (model node) and the raw node-llama-cpp runner');
  const [api, raw] = await Promise.all([
    startApi(procs, 'api-llama', serverCpu, { modelsYaml: yaml, workDir, env: { LOG_LEVEL: 'warn', LOG_REQUESTS: 'false', CACHE_ENABLED: 'false' } }),
    startRawLlama(procs, serverCpu),
  ]);
  await raw.call(
    { type: 'load', models: models.map((m, i) => ({ name: m.name, path: files[i] })), contextSize: LLAMA.contextSize, threads: LLAMA.threads },
    'loaded',
    120_000,
  );
  const results: LlamaModelResult[] = [];
  for (const [i, m] of models.entries()) {
    const apiRun = { requests: 0, tokens: 0, ms: 0, cpuNs: 0, rounds: [] as number[], cpuRounds: [] as number[] };
    const rawRun = { requests: 0, tokens: 0, ms: 0, cpuNs: 0, rounds: [] as number[], cpuRounds: [] as number[] };
    /** Runs a slice, charging the CPU time `pid` used during it. */
    const charged = async (pid: number, into: typeof apiRun | undefined, slice: () => Promise<number>): Promise<void> => {
      const before = cpuTimeNs(pid);
      const tokens = await slice();
      const after = cpuTimeNs(pid);
      if (into && before !== undefined && after !== undefined) {
        into.cpuNs += after - before;
        into.cpuRounds.push(tokens / ((after - before) / 1e9));
      }
    };
    const body = JSON.stringify({ model: m.name, prompt: LLAMA.prompt, max_tokens: m.maxTokens, temperature: 0 });
    const apiSlice = (durationMs: number, into: typeof apiRun | undefined): Promise<void> => charged(api.process.pid, into, async () => {
      const started = performance.now();
      let requests = 0;
      let tokens = 0;
      do {
        const response = await postJson(agent, `${api.url}${LLAMA.route}`, body, { 'cache-control': 'no-store' }, 120_000);
        if (response.status !== 200) throw new Error(`API ${m.name}: HTTP ${response.status}: ${response.text.slice(0, 300)}`);
        tokens += (JSON.parse(response.text) as { usage: { completion_tokens: number } }).usage.completion_tokens;
        requests += 1;
      } while (performance.now() - started < durationMs);
      if (into) {
        const elapsed = performance.now() - started;
        into.requests += requests;
        into.tokens += tokens;
        into.ms += elapsed;
        into.rounds.push(tokens / (elapsed / 1000));
      }
      return tokens;
    });
    const rawSlice = (durationMs: number, into: typeof rawRun | undefined): Promise<void> => charged(raw.process.pid, into, async () => {
      const r = await raw.call<{ requests: number; tokens: number; elapsedMs: number }>(
        { type: 'run', model: m.name, prompt: LLAMA.prompt, maxTokens: m.maxTokens, durationMs },
        'result',
        durationMs + 120_000,
      );
      if (into) {
        into.requests += r.requests;
        into.tokens += r.tokens;
        into.ms += r.elapsedMs;
        into.rounds.push(r.tokens / (r.elapsedMs / 1000));
      }
      return r.tokens;
    });
    log(`llama.cpp: ${m.name} (${m.description}), ${m.maxTokens} tokens per request, raw vs API alternating`);
    await rawSlice(0, undefined);
    await apiSlice(0, undefined);
    for (let round = 0; round < options.rounds; round += 1) {
      if (round % 2 === 0) {
        await rawSlice(options.llamaSliceMs, rawRun);
        await apiSlice(options.llamaSliceMs, apiRun);
      } else {
        await apiSlice(options.llamaSliceMs, apiRun);
        await rawSlice(options.llamaSliceMs, rawRun);
      }
    }
    const run = (r: typeof apiRun): LlamaRun => ({
      requests: r.requests,
      tokens: r.tokens,
      seconds: round(r.ms / 1000, 2),
      tokensPerS: round(r.tokens / (r.ms / 1000), 1),
      roundTokensPerS: r.rounds.map((v) => round(v, 1)),
      tokensPerCpuS: r.cpuNs > 0 ? round(r.tokens / (r.cpuNs / 1e9), 1) : null,
    });
    // Paired like the throughput ratios: the median over rounds of API / raw within the round.
    const wallRatio = round(median(apiRun.rounds.map((v, k) => v / (rawRun.rounds[k] ?? Number.NaN)).filter(Number.isFinite)), 3);
    const cpuRatio =
      apiRun.cpuRounds.length > 0 && apiRun.cpuRounds.length === rawRun.cpuRounds.length
        ? round(median(apiRun.cpuRounds.map((v, k) => v / rawRun.cpuRounds[k]!)), 3)
        : null;
    const result: LlamaModelResult = {
      name: m.name,
      description: m.description,
      file: files[i]!,
      sizeBytes: (await stat(files[i]!)).size,
      maxTokens: m.maxTokens,
      raw: run(rawRun),
      api: run(apiRun),
      wallRatio,
      cpuRatio,
      // Wall-clock tokens/s swing with whatever else runs on the machine; tokens per CPU-second of
      // each process do much less, and equal tokens/s on a core of its own.
      ratio: cpuRatio ?? wallRatio,
    };
    results.push(result);
    log(
      `  raw ${result.raw.tokensPerS} tokens/s (${result.raw.tokensPerCpuS} per CPU-s), API ${result.api.tokensPerS} tokens/s ` +
        `(${result.api.tokensPerCpuS} per CPU-s): wall ${(result.wallRatio * 100).toFixed(1)}%, CPU-normalised ${((result.cpuRatio ?? Number.NaN) * 100).toFixed(1)}%`,
    );
  }
  return { config: { ...LLAMA }, models: results };
}
