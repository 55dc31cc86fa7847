import type { FastifyBaseLogger } from 'fastify';
import type { Bindings, ChildLoggerOptions } from 'pino';

type Level = 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace';

/**
 * `request.log` without the per-request cost: Fastify builds a pino child logger for every request
 * (bindings serialised through the redaction paths), ~1.5 µs of CPU even when nothing is logged,
 * which is the common case on the inference routes (request logs off, level warn). This one
 * creates the child on the first call at an enabled level, so a request that logs nothing pays for
 * one small object.
 *
 * Used as Fastify's `childLoggerFactory` (see bootstrap.ts). Log lines are the child's: same
 * bindings (`reqId`), same level, same redaction.
 */
export class LazyRequestLogger {
  private instance: FastifyBaseLogger | undefined;
  private ownLevel: string | undefined;

  constructor(
    private readonly parent: FastifyBaseLogger,
    private readonly bindings: Bindings,
    private readonly options: ChildLoggerOptions,
  ) {}

  /** Fastify's `childLoggerFactory` signature. */
  static factory(this: void, parent: FastifyBaseLogger, bindings: Bindings, options: ChildLoggerOptions): FastifyBaseLogger {
    // Structurally a FastifyBaseLogger; its log methods take pino's LogFn arguments.
    return new LazyRequestLogger(parent, bindings, options) as unknown as FastifyBaseLogger;
  }

  get level(): string {
    return this.instance?.level ?? this.ownLevel ?? this.options.level ?? this.parent.level;
  }

  set level(level: string) {
    if (this.instance) this.instance.level = level;
    else this.ownLevel = level;
  }

  // Prototype methods, not arrow fields: nothing is allocated per request beyond the object itself.
  fatal(...args: unknown[]): void {
    this.log('fatal', args);
  }

  error(...args: unknown[]): void {
    this.log('error', args);
  }

  warn(...args: unknown[]): void {
    this.log('warn', args);
  }

  info(...args: unknown[]): void {
    this.log('info', args);
  }

  debug(...args: unknown[]): void {
    this.log('debug', args);
  }

  trace(...args: unknown[]): void {
    this.log('trace', args);
  }

  silent(): void {
    // pino's silent level: nothing.
  }

  /** A child is lazy too until this logger exists: it only adds bindings (e.g. the API key's name). */
  child(bindings: Bindings, options?: ChildLoggerOptions): FastifyBaseLogger {
    if (this.instance) return this.instance.child(bindings, options);
    const child = new LazyRequestLogger(this.parent, { ...this.bindings, ...bindings }, { ...this.options, ...options });
    if (this.ownLevel !== undefined) child.ownLevel = this.ownLevel;
    return child as unknown as FastifyBaseLogger;
  }

  private log(level: Level, args: unknown[]): void {
    if (!this.instance && !this.enabled(level)) return;
    (this.logger()[level] as (...a: unknown[]) => void)(...args);
  }

  private enabled(level: Level): boolean {
    const parent = this.parent as FastifyBaseLogger & { levels?: { values: Record<string, number> } };
    const values = parent.levels?.values;
    if (!values) return true;
    const threshold = values[this.level];
    const wanted = values[level];
    return threshold === undefined || wanted === undefined || wanted >= threshold;
  }

  private logger(): FastifyBaseLogger {
    if (!this.instance) {
      this.instance = this.parent.child(this.bindings, this.options);
      if (this.ownLevel !== undefined) this.instance.level = this.ownLevel;
    }
    return this.instance;
  }
}
