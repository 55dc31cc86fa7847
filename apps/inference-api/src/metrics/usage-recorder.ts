import type { TokenUsage } from '@infer/model-providers';

/**
 * Told the token usage of every completion the API answers (JSON, stream, /predict). Provided by the
 * metrics module when METRICS_PORT is set; without it nothing is injected and nothing is recorded.
 */
export interface UsageRecorder {
  /**
   * `fromCache`: answered by the response cache (a stored entry, or a generation another request led).
   * `key`: the name of the request's API key when it is a named one (API_KEYS_FILE).
   */
  record(model: string, usage: TokenUsage, fromCache: boolean, key?: string): void;
  /** A stream's timing (time to its first part, and per output token after it), when it finishes. */
  streamTiming(model: string, timing: StreamTiming, completionTokens: number, fromCache: boolean): void;
}

/** When a stream's first part and its finish were written, in ms since the request arrived (Fastify's `reply.elapsedTime`). */
export interface StreamTiming {
  readonly firstPartMs: number;
  readonly finishMs: number;
}

export const USAGE_RECORDER = Symbol.for('inference-api:usage-recorder');
