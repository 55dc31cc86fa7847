/**
 * The speed targets of issue 5, each a ratio between targets measured in the same run.
 * `ratio` is measured/required for "at least" goals (>= 1 is met) and measured/limit for
 * "at most" goals (<= 1 is met).
 */
import {
  type BenchOptions,
  type BenchResult,
  isError,
  type Section,
  type TargetResult,
  type ThroughputCell,
  type ThroughputSection,
} from './types.js';

type Partial = Omit<BenchResult, 'meta' | 'targets'>;

function cell(t: Section<ThroughputSection>, target: string, c: number, variant = 'upstream 0 ms'): ThroughputCell | undefined {
  if (isError(t)) return undefined;
  return t.cells.find((x) => x.variant === variant && x.target === target && x.concurrency === c);
}

/**
 * The ratio of two targets' req/s, as the median over rounds of the ratio within each round (the
 * two slices of a round ran seconds apart): a burst of outside load that hits one slice moves one
 * round's ratio, not the result. Falls back to the ratio of the totals.
 */
export function pairedRatio(a: ThroughputCell, b: ThroughputCell): number {
  const n = Math.min(a.sliceRps.length, b.sliceRps.length);
  const ratios: number[] = [];
  for (let i = 0; i < n; i += 1) if (b.sliceRps[i]! > 0) ratios.push(a.sliceRps[i]! / b.sliceRps[i]!);
  if (ratios.length === 0) return a.rps / b.rps;
  ratios.sort((x, y) => x - y);
  const mid = ratios.length >> 1;
  return ratios.length % 2 === 1 ? ratios[mid]! : (ratios[mid - 1]! + ratios[mid]!) / 2;
}

function fmt(value: number, digits = 2): string {
  return Number.isFinite(value) ? value.toFixed(digits) : 'n/a';
}

function missing(id: string, goal: string, why: string): TargetResult {
  return { id, goal, measured: 'not measured', ratio: null, met: false, note: why };
}

function atLeast(id: string, goal: string, measured: string, value: number, required: number, note?: string): TargetResult {
  const ratio = value / required;
  return { id, goal, measured, ratio: Number.isFinite(ratio) ? Math.round(ratio * 1000) / 1000 : null, met: ratio >= 1, ...(note ? { note } : {}) };
}

function atMost(id: string, goal: string, measured: string, value: number, limit: number, note?: string): TargetResult {
  const ratio = value / limit;
  return { id, goal, measured, ratio: Number.isFinite(ratio) ? Math.round(ratio * 1000) / 1000 : null, met: value <= limit, ...(note ? { note } : {}) };
}

export function evaluateTargets(r: Partial, options: Pick<BenchOptions, 'streams' | 'coalesce'>): TargetResult[] {
  const targets: TargetResult[] = [];
  const t = r.throughput;
  const tError = isError(t) ? t.error : undefined;

  // 1. Miss path at c=16 vs Portkey and vs bare Fastify.
  {
    const api = cell(t, 'api-miss', 16);
    const portkey = cell(t, 'portkey', 16);
    const fastify = cell(t, 'bare-fastify', 16);
    const goalP = 'miss path req/s at c=16 >= 10x Portkey';
    if (!api || !portkey) targets.push(missing('miss-vs-portkey', goalP, tError ?? 'Portkey or the API was not measured'));
    else {
      const x = pairedRatio(api, portkey);
      targets.push(atLeast('miss-vs-portkey', goalP, `${api.rps} vs ${portkey.rps} req/s; paired ratio ${fmt(x, 1)}x`, x, 10));
    }
    const goalF = 'miss path req/s at c=16 >= 25% of bare Fastify';
    if (!api || !fastify) targets.push(missing('miss-vs-fastify', goalF, tError ?? 'not measured'));
    else {
      const x = pairedRatio(api, fastify);
      targets.push(atLeast('miss-vs-fastify', goalF, `${api.rps} vs ${fastify.rps} req/s; paired ratio ${fmt(x * 100, 1)}%`, x, 0.25));
    }
  }

  // 2. Added latency at c=1.
  {
    const api = cell(t, 'api-miss', 1);
    const goal50 = 'added latency vs direct upstream at c=1: p50 <= 0.25 ms';
    const goal99 = 'added latency vs direct upstream at c=1: p99 <= 1 ms';
    if (!api || api.addedP50Ms === null || api.addedP99Ms === null) {
      targets.push(missing('added-p50', goal50, tError ?? 'not measured'), missing('added-p99', goal99, tError ?? 'not measured'));
    } else {
      // The same hop with nothing behind it: what the machine itself adds (cross-core wake-ups of a VM).
      const floor = cell(t, 'bare-http', 1);
      const floorNote =
        floor && floor.addedP50Ms !== null && floor.addedP99Ms !== null
          ? `bare node:http in the API's place adds +${fmt(floor.addedP50Ms, 3)} ms p50 / +${fmt(floor.addedP99Ms, 3)} ms p99 on this machine`
          : undefined;
      targets.push(
        atMost('added-p50', goal50, `+${fmt(api.addedP50Ms, 3)} ms (API p50 ${fmt(api.p50Ms, 3)} ms)`, api.addedP50Ms, 0.25, floorNote),
        atMost('added-p99', goal99, `+${fmt(api.addedP99Ms, 3)} ms (API p99 ${fmt(api.p99Ms, 3)} ms)`, api.addedP99Ms, 1, floorNote),
      );
    }
  }

  // 3. Cache hit at c=16 vs bare Fastify.
  {
    const hit = cell(t, 'api-hit', 16);
    const fastify = cell(t, 'bare-fastify', 16);
    const goal = 'cache hit req/s at c=16 >= 50% of bare Fastify';
    if (!hit || !fastify || isError(t)) targets.push(missing('hit-vs-fastify', goal, tError ?? 'not measured'));
    else {
      const x = pairedRatio(hit, fastify);
      const result = atLeast('hit-vs-fastify', goal, `${hit.rps} vs ${fastify.rps} req/s; paired ratio ${fmt(x * 100, 1)}%`, x, 0.5);
      targets.push(
        t.cacheHitObserved
          ? result
          : { ...result, met: false, note: 'the API never answered X-Cache: HIT: the cache hit path is not there (the row measures a miss)' },
      );
    }
  }

  // 4. Streaming.
  {
    const s = r.streaming;
    const goalTtft = 'streaming: added time to first token <= 1 ms p50';
    const goalStall = `streaming: ${options.streams} concurrent streams, none stalls`;
    if (isError(s)) targets.push(missing('stream-ttft', goalTtft, s.error), missing('stream-stall', goalStall, s.error));
    else {
      const api = s.firstToken.find((x) => x.target === 'api');
      if (!api || api.addedFirstTokenP50Ms === null) targets.push(missing('stream-ttft', goalTtft, 'not measured'));
      else {
        targets.push(
          atMost(
            'stream-ttft',
            goalTtft,
            `+${fmt(api.addedFirstTokenP50Ms, 3)} ms (API ${fmt(api.firstTokenP50Ms, 3)} ms p50; ${api.errors} errors)`,
            api.addedFirstTokenP50Ms,
            1,
          ),
        );
        if (api.errors > 0) targets[targets.length - 1] = { ...targets[targets.length - 1]!, met: false, note: `${api.errors} streams failed` };
      }
      const many = s.many.find((x) => x.target === 'api');
      if (!many) targets.push(missing('stream-stall', goalStall, 'not measured'));
      else {
        const ok = many.streams >= options.streams && many.completed === many.streams && many.stalled === 0 && many.failed === 0;
        targets.push({
          id: 'stream-stall',
          goal: goalStall,
          measured: `${many.completed}/${many.streams} complete, ${many.stalled} stalled (gap > ${many.stallThresholdMs} ms), ${many.failed} failed; max gap ${fmt(many.maxGapMs, 1)} ms`,
          ratio: Math.round((many.completed / many.streams) * 1000) / 1000,
          met: ok,
        });
      }
    }
  }

  // 5. Coalescing.
  {
    const c = r.coalescing;
    const goal = `coalescing: ${options.coalesce} identical concurrent requests -> 1 upstream call`;
    if (isError(c)) targets.push(missing('coalescing', goal, c.error));
    else {
      const allOk = (c.statuses['200'] ?? 0) === c.requests;
      const result = atMost('coalescing', goal, `${c.upstreamCalls} upstream call(s) for ${c.requests} requests`, c.upstreamCalls, 1);
      targets.push(allOk ? result : { ...result, met: false, note: `not every request succeeded: ${JSON.stringify(c.statuses)}` });
    }
  }

  // 6. llama.cpp.
  {
    const l = r.llama;
    for (const name of ['tiny', 'large']) {
      const goal = `llama.cpp served >= 90% of raw node-llama-cpp tokens/s (${name})`;
      if (isError(l)) {
        targets.push(missing(`llama-${name}`, goal, l.error));
        continue;
      }
      const m = l.models.find((x) => x.name === name);
      if (!m) targets.push(missing(`llama-${name}`, goal, 'not measured'));
      else {
        const measured =
          m.cpuRatio === null
            ? `${m.api.tokensPerS} vs ${m.raw.tokensPerS} tokens/s; paired ratio ${fmt(m.ratio * 100, 1)}%`
            : `${m.api.tokensPerCpuS} vs ${m.raw.tokensPerCpuS} tokens per CPU-second, paired ratio ${fmt(m.cpuRatio * 100, 1)}% ` +
              `(wall-clock ${m.api.tokensPerS} vs ${m.raw.tokensPerS} tokens/s, ${fmt(m.wallRatio * 100, 1)}%)`;
        targets.push(atLeast(`llama-${name}`, goal, measured, m.ratio, 0.9));
      }
    }
  }

  // 7. Memory.
  {
    const m = r.memory;
    const goal = 'RSS of a gateway worker after the run <= 150 MB';
    if (isError(m) || !m.gateway) targets.push(missing('rss', goal, isError(m) ? m.error : 'not measured'));
    else {
      const mb = (m.gateway.rssMiB * 2 ** 20) / 1e6;
      const toMb = (mib: number): string => fmt((mib * 2 ** 20) / 1e6, 1);
      const start = m.gatewayAtStartMiB === null ? '' : `; ${toMb(m.gatewayAtStartMiB)} MB before any load`;
      const idle = m.gatewayIdle === null ? '' : `; ${toMb(m.gatewayIdle.rssMiB)} MB after ${m.gatewayIdle.afterS} s idle`;
      // Judged on the reading right after the load (the stricter one); the idle reading is context.
      const settledMet = m.gatewayIdle !== null && (m.gatewayIdle.rssMiB * 2 ** 20) / 1e6 <= 150;
      targets.push(
        atMost(
          'rss',
          goal,
          `${fmt(mb, 1)} MB right after the load (${m.gateway.privateMiB === null ? '' : `${toMb(m.gateway.privateMiB)} MB private; `}peak ${toMb(m.gateway.peakRssMiB)} MB${start}${idle})`,
          mb,
          150,
          settledMet && mb > 150 ? `judged right after the load; at rest the worker is back under 150 MB` : undefined,
        ),
      );
    }
  }
  return targets;
}
