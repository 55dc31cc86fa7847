/** The markdown report printed on stdout. */
import { type BenchResult, isError } from './types.js';

function n(value: number | null | undefined, digits = 3): string {
  if (value === null || value === undefined || !Number.isFinite(value)) return 'n/a';
  return value.toFixed(digits);
}

function signed(value: number | null | undefined, digits = 3): string {
  if (value === null || value === undefined || !Number.isFinite(value)) return '—';
  return `${value >= 0 ? '+' : ''}${value.toFixed(digits)}`;
}

function table(header: readonly string[], rows: readonly (readonly string[])[]): string {
  const lines = [`| ${header.join(' | ')} |`, `|${header.map(() => '---').join('|')}|`];
  for (const row of rows) lines.push(`| ${row.join(' | ')} |`);
  return lines.join('\n');
}

export function markdownReport(r: BenchResult, files: { readonly json: string; readonly chart: string }): string {
  const m = r.meta;
  const out: string[] = [];
  out.push(`## Benchmark ${m.date.slice(0, 10)} (${m.mode})`);
  out.push('');
  out.push(
    `- **Machine**: ${m.machine.cpuModel}, ${m.machine.cores} CPUs, ${m.machine.memoryGiB} GiB, Linux ${m.machine.kernel}, Node ${m.machine.node} (${m.machine.hostname}); run at ${m.date}, ${m.durationS} s`,
  );
  out.push(`- **Pinning**: ${m.pinning.description}`);
  out.push(`- **Load generator**: ${m.loadGenerator}`);
  out.push(`- **Logging**: ${m.logging}`);
  out.push(`- **Method**: ${m.method}`);
  out.push(`- **Request**: POST /v1/chat/completions, ${m.requestBytes} bytes; upstream reply ${m.upstreamReplyBytes} bytes (the bare servers answer the same bytes)`);
  out.push('');

  out.push('### Targets');
  out.push('');
  out.push(
    table(
      ['target', 'measured', 'ratio', 'result'],
      r.targets.map((t) => [t.goal, t.measured + (t.note ? ` — ${t.note}` : ''), t.ratio === null ? 'n/a' : `${t.ratio.toFixed(3)}`, t.met ? '**met**' : '**not met**']),
    ),
  );
  out.push('');
  out.push(
    'ratio: measured / required for "at least" goals (met when >= 1), measured / limit for "at most" goals (met when <= 1). ' +
      'Throughput ratios are paired: the median over rounds of the ratio of the two slices of each round.',
  );
  out.push('');

  out.push('### Throughput and latency (non-streaming chat completions)');
  out.push('');
  if (isError(r.throughput)) out.push(`Not measured: ${r.throughput.error}`);
  else {
    const t = r.throughput;
    for (const variant of t.variants) {
      out.push(
        `**${variant.name}** (fake upstream latency ${variant.upstreamLatencyMs} ms; added = vs the upstream directly, same concurrency; ` +
          'server CPU = CPU time of the server under test per request, all threads, from /proc: steadier than req/s on a shared machine)',
      );
      out.push('');
      const rows = t.cells
        .filter((c) => c.variant === variant.name)
        .map((c) => [
          c.label,
          String(c.concurrency),
          String(c.rps),
          c.sliceRps.length > 1 ? `${Math.min(...c.sliceRps)}–${Math.max(...c.sliceRps)}` : '—',
          n(c.p50Ms),
          n(c.p99Ms),
          signed(c.addedP50Ms),
          signed(c.addedP99Ms),
          c.cpuUsPerRequest === null ? 'n/a' : c.cpuUsPerRequest.toFixed(1),
          String(c.errors),
        ]);
      out.push(
        table(['target', 'c', 'req/s', 'slices min–max', 'p50 ms', 'p99 ms', 'added p50 ms', 'added p99 ms', 'server CPU µs/req', 'errors'], rows),
      );
      out.push('');
    }
    const ladder = ['bare-http', 'bare-fastify', 'bare-nest', 'api-hit', 'api-nocache', 'api-miss', 'api-miss-logged', 'portkey'];
    const at16 = ladder
      .map((id) => t.cells.find((c) => c.variant === t.variants[0]?.name && c.target === id && c.concurrency === 16))
      .filter((c): c is NonNullable<typeof c> => c !== undefined && c.cpuUsPerRequest !== null);
    if (at16.length > 0) {
      out.push(
        '**Where the CPU goes** (server CPU µs per request at c=16, upstream 0 ms). Differences between rows are what a layer costs: ' +
          'Fastify over node:http, NestJS over Fastify, the API hit path over NestJS, the upstream call over the hit path, the ' +
          "cache's miss bookkeeping over no cache, request logging over the plain miss path.",
      );
      out.push('');
      out.push(
        table(
          ['target', 'CPU µs/req', 'vs previous row', 'req/s at c=16'],
          at16.map((c, i) => [
            c.label,
            n(c.cpuUsPerRequest, 1),
            i === 0 ? '—' : signed((c.cpuUsPerRequest ?? 0) - (at16[i - 1]!.cpuUsPerRequest ?? 0), 1),
            String(c.rps),
          ]),
        ),
      );
      out.push('');
    }
    const failed = t.checks.filter((c) => !c.ok);
    if (failed.length > 0) out.push(`Checks that failed before the load: ${failed.map((c) => c.detail).join('; ')}`, '');
  }

  out.push('### Streaming');
  out.push('');
  if (isError(r.streaming)) out.push(`Not measured: ${r.streaming.error}`);
  else {
    const s = r.streaming;
    out.push(
      `Time to first token (first SSE event with content) and whole stream, c=1; upstream: ${s.upstream.tokens} tokens, ${s.upstream.interTokenDelayMs} ms apart.`,
    );
    out.push('');
    out.push(
      table(
        ['target', 'streams', 'first token p50 ms', 'p99 ms', 'added p50 ms', 'added p99 ms', 'total p50 ms', 'total p99 ms', 'errors'],
        s.firstToken.map((x) => [
          x.label,
          String(x.samples),
          n(x.firstTokenP50Ms),
          n(x.firstTokenP99Ms),
          signed(x.addedFirstTokenP50Ms),
          signed(x.addedFirstTokenP99Ms),
          n(x.totalP50Ms),
          n(x.totalP99Ms),
          String(x.errors),
        ]),
      ),
    );
    out.push('');
    out.push(
      table(
        ['concurrent streams', 'target', 'complete', 'stalled', 'failed', 'max gap ms', 'p99 gap ms', 'first token p99 ms', 'total p50 / p99 ms', 'ideal ms', 'wall ms'],
        s.many.map((x) => [
          String(x.streams),
          x.label,
          String(x.completed),
          String(x.stalled),
          String(x.failed),
          n(x.maxGapMs, 1),
          n(x.p99GapMs, 1),
          n(x.firstTokenP99Ms, 1),
          `${n(x.totalP50Ms, 1)} / ${n(x.totalP99Ms, 1)}`,
          String(x.expectedMs),
          n(x.wallMs, 0),
        ]),
      ),
    );
    out.push('');
    out.push('A stream stalls when it does not end with `data: [DONE]` or goes silent longer than the threshold.');
    out.push('');
  }

  out.push('### Coalescing, llama.cpp, memory');
  out.push('');
  const rows: string[][] = [];
  if (isError(r.coalescing)) rows.push(['coalescing', `not measured: ${r.coalescing.error}`]);
  else {
    const c = r.coalescing;
    rows.push([
      `coalescing (${c.requests} identical concurrent requests, upstream ${c.upstreamLatencyMs} ms)`,
      `${c.upstreamCalls} upstream call(s); statuses ${JSON.stringify(c.statuses)}; X-Cache ${JSON.stringify(c.xCache)}; identical content: ${c.identicalContent}; ${n(c.wallMs, 0)} ms`,
    ]);
  }
  if (isError(r.llama)) rows.push(['llama.cpp', `not measured: ${r.llama.error}`]);
  else {
    const l = r.llama;
    for (const x of l.models) {
      rows.push([
        `llama.cpp ${x.name}: ${x.description}, ${x.maxTokens} tokens/request`,
        `API ${x.api.tokensPerS} tokens/s (${x.api.requests} requests), ${n(x.api.tokensPerCpuS, 1)} per CPU-second vs raw node-llama-cpp ` +
          `${x.raw.tokensPerS} tokens/s (${x.raw.requests}), ${n(x.raw.tokensPerCpuS, 1)} per CPU-second; paired ratio ` +
          `${n(x.wallRatio * 100, 1)}% wall-clock, ${n((x.cpuRatio ?? Number.NaN) * 100, 1)}% CPU-normalised (the target uses ${x.cpuRatio === null ? 'wall-clock' : 'CPU-normalised'})`,
      ]);
    }
    rows.push([
      'llama.cpp setup',
      `POST ${l.config.route}, prompt "${l.config.prompt}", temperature 0, threads ${l.config.threads}, contextSize ${l.config.contextSize}, sequences ${l.config.sequences}, c=1; API and raw runner both on the server core`,
    ]);
  }
  if (isError(r.memory)) rows.push(['memory', `not measured: ${r.memory.error}`]);
  else {
    const mem = r.memory;
    if (mem.gateway) {
      rows.push([
        `RSS: ${mem.gateway.process}`,
        `${n(mem.gateway.rssMiB, 1)} MiB (` +
          (mem.gateway.privateMiB === null ? '' : `${n(mem.gateway.privateMiB, 1)} MiB of it private, the rest shared with other processes; `) +
          `peak ${n(mem.gateway.peakRssMiB, 1)} MiB; ${n(mem.gatewayAtStartMiB, 1)} MiB once started, before any load` +
          (mem.gatewayIdle ? `; ${n(mem.gatewayIdle.rssMiB, 1)} MiB after ${mem.gatewayIdle.afterS} s without requests)` : ')'),
      ]);
    }
    for (const o of mem.others) rows.push([`RSS: ${o.process} (idle since its slices)`, `${n(o.rssMiB, 1)} MiB (peak ${n(o.peakRssMiB, 1)} MiB)`]);
  }
  out.push(table(['what', 'result'], rows));
  out.push('');
  out.push(`JSON: ${files.json}  \nChart: ${files.chart}`);
  return `${out.join('\n')}\n`;
}
