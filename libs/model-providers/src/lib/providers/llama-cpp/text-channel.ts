/**
 * Bridges push callbacks (node-llama-cpp's `onTextChunk`) to a pull consumer (an async iterator).
 *
 * Text pushed while the consumer is busy is coalesced into one pending string, so the buffer is
 * never a growing list of chunks: at most the text generated since the last pull. A failure is
 * delivered before any pending text (an aborted stream should end at once, not drain first).
 */
export class TextChannel {
  private pending = '';
  private ended = false;
  private failure: { readonly error: unknown } | undefined;
  private wake: (() => void) | undefined;

  push(text: string): void {
    if (this.ended || this.failure || text.length === 0) return;
    this.pending += text;
    this.notify();
  }

  end(): void {
    this.ended = true;
    this.notify();
  }

  fail(error: unknown): void {
    this.failure ??= { error };
    this.notify();
  }

  /** The text pushed since the last call (waiting for some), or undefined once ended. Throws the failure. */
  async next(): Promise<string | undefined> {
    for (;;) {
      if (this.failure) throw this.failure.error;
      if (this.pending.length > 0) {
        const text = this.pending;
        this.pending = '';
        return text;
      }
      if (this.ended) return undefined;
      await new Promise<void>((resolve) => {
        this.wake = resolve;
      });
    }
  }

  private notify(): void {
    const wake = this.wake;
    this.wake = undefined;
    wake?.();
  }
}
