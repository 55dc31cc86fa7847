/**
 * wrk (the Debian package, 4.x) as the load generator: one thread, N keep-alive connections, a Lua
 * script for the POST body and headers whose `done` hook dumps wrk's full latency histogram (1 µs
 * buckets) as JSON, so slices can be merged exactly.
 */
import { once } from 'node:events';
import { readFile, rm, writeFile } from 'node:fs/promises';
import { Histogram } from './histogram.js';
import type { ProcessGroup } from './processes.js';

export interface WrkRequestSpec {
  readonly url: string;
  readonly headers: Readonly<Record<string, string>>;
  /**
   * The JSON body. With `uniqueMarker`, each request replaces the marker (a string of the same
   * length as the replacement) by a per-slice prefix and a 9-digit counter: every request is unique
   * and all bodies have the same size.
   */
  readonly body: string;
  readonly uniqueMarker?: string;
}

export interface WrkResult {
  readonly requests: number;
  readonly durationUs: number;
  readonly bytes: number;
  readonly errors: { readonly connect: number; readonly read: number; readonly write: number; readonly status: number; readonly timeout: number };
  /** One sample per response (wrk's coordinated-omission adjustment undone, see uncorrect()). */
  readonly histogram: Histogram;
  /** wrk's own histogram, with the synthetic samples its stats_correct() adds. */
  readonly correctedHistogram: Histogram;
}

/**
 * wrk 4 "corrects" its latency histogram before `done` runs (wrk.c: stats_correct(latency,
 * runtime_us / (complete / connections))): for every sample n >= 2E it adds one synthetic sample
 * at n-E, n-2E, ... down to just above E. A single 25 ms pause at 10 000 req/s thus becomes ~250
 * samples, enough to own the p99. The bench reports per-response latency (it compares closed-loop
 * targets side by side), so it inverts that step exactly: walking down from the largest value, the
 * count of bucket n is original (nothing above n has been subtracted yet once n is reached), and its
 * synthetic copies are removed from n-E, n-2E, ...
 */
export function uncorrect(pairs: readonly number[], requests: number, durationUs: number, connections: number): Map<number, number> {
  const data = new Map<number, number>();
  for (let i = 0; i + 1 < pairs.length; i += 2) data.set(pairs[i]!, (data.get(pairs[i]!) ?? 0) + pairs[i + 1]!);
  const perConnection = Math.floor(requests / connections);
  if (perConnection === 0) return data;
  const expected = Math.floor(durationUs / perConnection);
  if (expected <= 0) return data;
  const values = [...data.keys()].sort((a, b) => b - a);
  for (const n of values) {
    if (n < expected * 2) break;
    const count = data.get(n) ?? 0;
    if (count <= 0) continue;
    for (let m = n - expected; m > expected; m -= expected) {
      const left = (data.get(m) ?? 0) - count;
      if (left > 0) data.set(m, left);
      else data.delete(m);
    }
  }
  return data;
}

/** The marker length the unique-body mode expects: 6-char slice prefix + '-' + 9 digits. */
export const UNIQUE_MARKER = 'UUUUUU-000000000';

function luaString(text: string): string {
  return `"${text.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n')}"`;
}

/** Writes the Lua script for a request spec; returns its path. */
export async function writeWrkScript(path: string, spec: WrkRequestSpec): Promise<string> {
  const url = new URL(spec.url);
  const lines: string[] = [
    'wrk.method = "POST"',
    `wrk.path = ${luaString(url.pathname + url.search)}`,
    'wrk.headers["Content-Type"] = "application/json"',
  ];
  for (const [name, value] of Object.entries(spec.headers)) lines.push(`wrk.headers[${luaString(name)}] = ${luaString(value)}`);
  if (spec.uniqueMarker !== undefined) {
    const at = spec.body.indexOf(spec.uniqueMarker);
    if (at === -1 || spec.uniqueMarker.length !== UNIQUE_MARKER.length) throw new Error('writeWrkScript: bad unique marker');
    const head = spec.body.slice(0, at);
    const tail = spec.body.slice(at + spec.uniqueMarker.length);
    lines.push(
      'local prefix = os.getenv("BENCH_PREFIX") or "xxxxxx"',
      `local head = ${luaString(head)} .. prefix .. "-"`,
      `local tail = ${luaString(tail)}`,
      'local n = 0',
      'request = function()',
      '  n = n + 1',
      '  return wrk.format(nil, nil, nil, head .. string.format("%09d", n) .. tail)',
      'end',
    );
  } else {
    lines.push(`wrk.body = ${luaString(spec.body)}`);
  }
  lines.push(
    'done = function(summary, latency, requests)',
    '  local f = io.open(os.getenv("WRK_OUT"), "w")',
    '  local e = summary.errors',
    '  f:write(string.format(\'{"requests":%d,"duration_us":%d,"bytes":%d,"errors":{"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d},"hist":[\',',
    '    summary.requests, summary.duration, summary.bytes, e.connect, e.read, e.write, e.status, e.timeout))',
    '  for i = 1, #latency do',
    '    local v, c = latency(i)',
    '    if i > 1 then f:write(",") end',
    '    f:write(string.format("%d,%d", v, c))',
    '  end',
    '  f:write("]}")',
    '  f:close()',
    'end',
  );
  await writeFile(path, `${lines.join('\n')}\n`);
  return path;
}

export interface WrkRun {
  readonly group: ProcessGroup;
  readonly cpu: number | undefined;
  readonly script: string;
  readonly url: string;
  readonly connections: number;
  readonly durationS: number;
  /** Where wrk's `done` hook writes its JSON (overwritten). */
  readonly outFile: string;
  /** 6 characters, unique per slice (the prefix of unique bodies). */
  readonly prefix: string;
  readonly timeoutS?: number;
}

export async function runWrk(run: WrkRun): Promise<WrkResult> {
  await rm(run.outFile, { force: true });
  const started = run.group.start({
    name: 'wrk',
    command: 'wrk',
    args: [
      '-t1',
      `-c${run.connections}`,
      `-d${run.durationS}s`,
      `--timeout`,
      `${run.timeoutS ?? 10}s`,
      '-s',
      run.script,
      run.url,
    ],
    cpu: run.cpu,
    env: { WRK_OUT: run.outFile, BENCH_PREFIX: run.prefix },
  });
  const [code] = (await once(started.child, 'exit')) as [number | null];
  if (code !== 0) throw new Error(`wrk exited with ${code}: ${started.tail(500)}`);
  const raw = JSON.parse(await readFile(run.outFile, 'utf8')) as {
    requests: number;
    duration_us: number;
    bytes: number;
    errors: WrkResult['errors'];
    hist: number[];
  };
  const correctedHistogram = new Histogram();
  correctedHistogram.addPairs(raw.hist);
  const histogram = new Histogram();
  for (const [value, count] of uncorrect(raw.hist, raw.requests, raw.duration_us, run.connections)) histogram.add(value, count);
  return { requests: raw.requests, durationUs: raw.duration_us, bytes: raw.bytes, errors: raw.errors, histogram, correctedHistogram };
}
