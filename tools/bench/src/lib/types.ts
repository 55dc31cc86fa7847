/** The shape of the bench's JSON output (also what the markdown, the chart and the targets read). */

export interface BenchOptions {
  readonly quick: boolean;
  /** Absolute path of the JSON output; the chart is written next to it (same name, .svg). */
  readonly jsonPath: string;
  /** Length of one wrk slice, s (integer: wrk's -d). */
  readonly sliceS: number;
  /** Slices per target per concurrency (targets alternate: A B C, C B A, ...). */
  readonly rounds: number;
  /** Discarded warm-up per target per concurrency, s (0: none). */
  readonly warmupS: number;
  readonly concurrency: readonly number[];
  /** Rounds for the 20 ms upstream variant. */
  readonly rounds20: number;
  /** Length of one streaming/llama slice, ms. */
  readonly streamSliceMs: number;
  readonly llamaSliceMs: number;
  /** Concurrent streams of the stall check. */
  readonly streams: number;
  /** Identical concurrent requests of the coalescing check. */
  readonly coalesce: number;
  readonly keepLogs: boolean;
  /** Sections to run (default all). */
  readonly only: ReadonlySet<SectionName>;
}

export const SECTION_NAMES = ['throughput', 'streaming', 'coalescing', 'llama'] as const;
export type SectionName = (typeof SECTION_NAMES)[number];

export interface MachineInfo {
  readonly cpuModel: string;
  readonly cores: number;
  readonly memoryGiB: number;
  readonly kernel: string;
  readonly node: string;
  readonly hostname: string;
}

export interface Meta {
  readonly date: string;
  readonly mode: 'quick' | 'full';
  readonly machine: MachineInfo;
  readonly pinning: { readonly enabled: boolean; readonly serverCpu: number | undefined; readonly loadCpu: number | undefined; readonly description: string };
  readonly loadGenerator: string;
  readonly logging: string;
  readonly method: string;
  readonly requestBytes: number;
  readonly upstreamReplyBytes: number;
  readonly durationS: number;
  readonly logDir: string | undefined;
}

export interface ThroughputCell {
  readonly variant: string;
  readonly target: string;
  readonly label: string;
  readonly concurrency: number;
  readonly slices: number;
  /** req/s of each slice, in the order they ran (the spread shows the machine's noise). */
  readonly sliceRps: readonly number[];
  readonly requests: number;
  readonly seconds: number;
  readonly rps: number;
  readonly p50Ms: number;
  readonly p99Ms: number;
  readonly meanMs: number;
  readonly maxMs: number;
  /** Socket errors + non-2xx answers. */
  readonly errors: number;
  /** CPU time the server under test used per request (all its threads), µs; null when unknown. */
  readonly cpuUsPerRequest: number | null;
  /** Against the direct upstream of the same variant and concurrency. */
  readonly addedP50Ms: number | null;
  readonly addedP99Ms: number | null;
}

export interface TargetCheck {
  readonly target: string;
  readonly ok: boolean;
  readonly detail: string;
}

export interface ThroughputSection {
  readonly variants: readonly { readonly name: string; readonly upstreamLatencyMs: number; readonly targets: readonly { readonly id: string; readonly label: string }[] }[];
  readonly cells: readonly ThroughputCell[];
  readonly checks: readonly TargetCheck[];
  readonly cacheHitObserved: boolean;
}

export interface StreamTargetResult {
  readonly target: string;
  readonly label: string;
  readonly samples: number;
  readonly errors: number;
  readonly firstTokenP50Ms: number;
  readonly firstTokenP99Ms: number;
  readonly totalP50Ms: number;
  readonly totalP99Ms: number;
  readonly addedFirstTokenP50Ms: number | null;
  readonly addedFirstTokenP99Ms: number | null;
  readonly addedTotalP50Ms: number | null;
}

export interface ManyStreamsResult {
  readonly target: string;
  readonly label: string;
  readonly streams: number;
  readonly completed: number;
  readonly stalled: number;
  readonly failed: number;
  readonly stallThresholdMs: number;
  readonly maxGapMs: number;
  readonly p99GapMs: number;
  readonly firstTokenP99Ms: number;
  readonly totalP50Ms: number;
  readonly totalP99Ms: number;
  readonly wallMs: number;
  readonly expectedMs: number;
  readonly upstreamAborted: number | null;
}

export interface StreamingSection {
  readonly upstream: { readonly tokens: number; readonly interTokenDelayMs: number };
  readonly firstToken: readonly StreamTargetResult[];
  readonly many: readonly ManyStreamsResult[];
}

export interface CoalescingSection {
  readonly requests: number;
  readonly upstreamLatencyMs: number;
  readonly upstreamCalls: number;
  readonly statuses: Readonly<Record<string, number>>;
  readonly xCache: Readonly<Record<string, number>>;
  readonly identicalContent: boolean;
  readonly wallMs: number;
}

export interface LlamaRun {
  readonly requests: number;
  readonly tokens: number;
  readonly seconds: number;
  readonly tokensPerS: number;
  /** tokens/s of each round's slice. */
  readonly roundTokensPerS: readonly number[];
  /** Tokens per second of CPU time the process used (all threads): tokens/s on a core of its own. */
  readonly tokensPerCpuS: number | null;
}

export interface LlamaModelResult {
  readonly name: string;
  readonly description: string;
  readonly file: string;
  readonly sizeBytes: number;
  readonly maxTokens: number;
  readonly raw: LlamaRun;
  readonly api: LlamaRun;
  /** API / raw wall-clock tokens/s, median over rounds. */
  readonly wallRatio: number;
  /** API / raw tokens per CPU-second, median over rounds (null when /proc is not readable). */
  readonly cpuRatio: number | null;
  /** What the target uses: cpuRatio when known, else wallRatio. */
  readonly ratio: number;
}

export interface LlamaSection {
  readonly config: { readonly threads: number; readonly contextSize: number; readonly sequences: number; readonly prompt: string; readonly route: string };
  readonly models: readonly LlamaModelResult[];
}

export interface MemoryEntry {
  readonly process: string;
  readonly pid: number;
  readonly rssMiB: number;
  readonly peakRssMiB: number;
  /** The part of the RSS that is the process's own (not shared with other processes); null where /proc lacks smaps_rollup. */
  readonly privateMiB: number | null;
}

export interface MemorySection {
  readonly gateway: MemoryEntry | null;
  /** RSS of the same process once started, before any load. */
  readonly gatewayAtStartMiB: number | null;
  /** RSS of the same process after `afterS` seconds without requests (after `gateway` was read). */
  readonly gatewayIdle: { readonly afterS: number; readonly rssMiB: number } | null;
  readonly others: readonly MemoryEntry[];
}

export interface TargetResult {
  readonly id: string;
  readonly goal: string;
  readonly measured: string;
  /** measured / limit (for "at most" goals) or measured / required (for "at least" goals). */
  readonly ratio: number | null;
  readonly met: boolean;
  readonly note?: string;
}

/** A section that could not be measured carries the error instead. */
export type Section<T> = T | { readonly error: string };

export interface BenchResult {
  readonly meta: Meta;
  readonly throughput: Section<ThroughputSection>;
  readonly streaming: Section<StreamingSection>;
  readonly coalescing: Section<CoalescingSection>;
  readonly llama: Section<LlamaSection>;
  readonly memory: Section<MemorySection>;
  readonly targets: readonly TargetResult[];
}

export function isError<T extends object>(section: Section<T>): section is { readonly error: string } {
  return 'error' in section;
}
