/**
 * Every process the bench starts goes through a ProcessGroup: pinned to a core with `taskset`,
 * output to a log file, and stopped by `stopAll()` (SIGTERM, then SIGKILL after a grace period),
 * which the entry point also calls on Ctrl-C, SIGTERM and errors. A synchronous last resort
 * (`killAllSync`, SIGKILL) runs on process exit.
 */
import { type ChildProcess, spawn, type StdioOptions } from 'node:child_process';
import { once } from 'node:events';
import { closeSync, openSync, readdirSync, readFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';

export interface StartOptions {
  /** Name used in messages and for the log file. */
  readonly name: string;
  readonly command: string;
  readonly args: readonly string[];
  /** CPU to pin to (`taskset -c`), or undefined for no pinning. */
  readonly cpu: number | undefined;
  readonly env?: Readonly<Record<string, string | undefined>>;
  readonly cwd?: string;
  /** Opens an IPC channel (node children only). */
  readonly ipc?: boolean;
}

export interface Started {
  readonly name: string;
  readonly child: ChildProcess;
  readonly pid: number;
  readonly logFile: string;
  /** The last `bytes` of the log file (for error messages). */
  tail(bytes?: number): string;
}

export class ProcessGroup {
  private readonly children = new Set<ChildProcess>();
  private readonly started: Started[] = [];

  private logDir = tmpdir();
  private useTaskset = false;
  private shutDown = false;

  /** Where logs go and whether `cpu` options are applied (taskset). */
  configure(options: { readonly logDir: string; readonly taskset: boolean }): void {
    this.logDir = options.logDir;
    this.useTaskset = options.taskset;
  }

  start(options: StartOptions): Started {
    // After shutdown() nothing new may start: a phase still running when Ctrl-C came would leak it.
    if (this.shutDown) throw new Error(`not starting ${options.name}: the bench is stopping`);
    const logFile = `${this.logDir}/${options.name}.log`;
    const fd = openSync(logFile, 'a');
    const stdio: StdioOptions = options.ipc ? ['ignore', fd, fd, 'ipc'] : ['ignore', fd, fd];
    // taskset execs the command: the child's pid is the command's pid (signals and /proc reach it).
    const pinned = this.useTaskset && options.cpu !== undefined;
    const child = spawn(pinned ? 'taskset' : options.command, pinned ? ['-c', String(options.cpu), options.command, ...options.args] : [...options.args], {
      cwd: options.cwd,
      env: { ...process.env, ...options.env } as NodeJS.ProcessEnv,
      stdio,
    });
    closeSync(fd);
    if (child.pid === undefined) throw new Error(`could not start ${options.name} (${options.command})`);
    this.children.add(child);
    child.once('exit', () => this.children.delete(child));
    const started: Started = {
      name: options.name,
      child,
      pid: child.pid,
      logFile,
      tail: (bytes = 2_000) => {
        try {
          const text = readFileSync(logFile, 'utf8');
          return text.slice(-bytes);
        } catch {
          return '';
        }
      },
    };
    this.started.push(started);
    return started;
  }

  isRunning(started: Started): boolean {
    return started.child.exitCode === null && started.child.signalCode === null;
  }

  /** Stops one process: SIGTERM, then SIGKILL after `graceMs`. */
  async stop(started: Started, graceMs = 5_000): Promise<void> {
    const child = started.child;
    if (child.exitCode !== null || child.signalCode !== null) return;
    const exited = once(child, 'exit');
    child.kill('SIGTERM');
    const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
    await exited;
    clearTimeout(timer);
  }

  /** Stops everything still running, in parallel. */
  async stopAll(graceMs = 5_000): Promise<void> {
    await Promise.all(this.started.map((s) => this.stop(s, graceMs).catch(() => undefined)));
  }

  /** Stops everything and refuses to start anything afterwards (Ctrl-C, the end of the run). */
  async shutdown(graceMs = 5_000): Promise<void> {
    this.shutDown = true;
    await this.stopAll(graceMs);
  }

  get stopping(): boolean {
    return this.shutDown;
  }

  /** Last resort on exit: SIGKILL whatever is left (synchronous). */
  killAllSync(): void {
    for (const child of this.children) {
      try {
        child.kill('SIGKILL');
      } catch {
        // already gone
      }
    }
  }
}

/** A TCP port that was free a moment ago on 127.0.0.1. */
export async function freePort(): Promise<number> {
  const server = createServer();
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const address = server.address();
  const port = typeof address === 'object' && address ? address.port : 0;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

/** Polls `probe` until it resolves true; throws after `timeoutMs` or when `alive()` turns false. */
export async function waitUntil(
  what: string,
  probe: () => Promise<boolean>,
  options: { readonly timeoutMs: number; readonly alive?: () => boolean; readonly detail?: () => string },
): Promise<void> {
  const deadline = Date.now() + options.timeoutMs;
  for (;;) {
    if (options.alive && !options.alive()) throw new Error(`${what}: the process exited during start\n${options.detail?.() ?? ''}`);
    try {
      if (await probe()) return;
    } catch {
      // not ready yet
    }
    if (Date.now() > deadline) throw new Error(`${what}: not ready after ${options.timeoutMs} ms\n${options.detail?.() ?? ''}`);
    await sleep(50);
  }
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Resident set size and its peak of a process, in bytes (Linux /proc). */
export function memoryOf(
  pid: number,
): { readonly rssBytes: number; readonly peakRssBytes: number; readonly privateBytes: number | undefined } | undefined {
  try {
    const status = readFileSync(`/proc/${pid}/status`, 'utf8');
    return { rssBytes: kbField(status, 'VmRSS') ?? 0, peakRssBytes: kbField(status, 'VmHWM') ?? 0, privateBytes: privateBytesOf(pid) };
  } catch {
    return undefined;
  }
}

/** A `Name:   123 kB` line of a /proc file, in bytes. */
function kbField(text: string, key: string): number | undefined {
  const match = new RegExp(`^${key}:\\s+(\\d+) kB`, 'm').exec(text);
  return match ? Number(match[1]) * 1024 : undefined;
}

/**
 * The part of the RSS no other process shares (smaps_rollup: Private_Clean + Private_Dirty). The rest
 * are mostly pages of the node binary, which every worker on a host shares.
 */
function privateBytesOf(pid: number): number | undefined {
  try {
    const rollup = readFileSync(`/proc/${pid}/smaps_rollup`, 'utf8');
    const clean = kbField(rollup, 'Private_Clean');
    const dirty = kbField(rollup, 'Private_Dirty');
    return clean === undefined || dirty === undefined ? undefined : clean + dirty;
  } catch {
    return undefined;
  }
}

/**
 * CPU time a process has used so far (all its threads), in ns, from /proc/<pid>/task/<tid>/schedstat;
 * undefined when not available. Divided by the requests of a slice, it gives CPU per request: a
 * figure that the other load on a shared machine disturbs much less than req/s.
 */
export function cpuTimeNs(pid: number): number | undefined {
  try {
    let total = 0;
    for (const tid of readdirSync(`/proc/${pid}/task`)) {
      try {
        total += Number(readFileSync(`/proc/${pid}/task/${tid}/schedstat`, 'utf8').split(' ')[0]);
      } catch {
        // the thread ended
      }
    }
    return total;
  } catch {
    return undefined;
  }
}
