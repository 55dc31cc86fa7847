/** Thrown by withTimeout when the deadline passes first. */
export class TimeoutError extends Error {
  override readonly name = 'TimeoutError';
}

/**
 * Runs `fn` with an AbortSignal that fires after `ms`; rejects with TimeoutError at that point
 * even if `fn` ignores the signal (a hung client must not hang a health probe).
 */
export async function withTimeout<T>(fn: (signal: AbortSignal) => Promise<T> | T, ms: number, what = 'operation'): Promise<T> {
  const controller = new AbortController();
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      const error = new TimeoutError(`${what} timed out after ${ms} ms`);
      controller.abort(error);
      reject(error);
    }, ms);
  });
  try {
    return await Promise.race([Promise.resolve().then(() => fn(controller.signal)), deadline]);
  } finally {
    clearTimeout(timer);
  }
}

export function errorMessage(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
