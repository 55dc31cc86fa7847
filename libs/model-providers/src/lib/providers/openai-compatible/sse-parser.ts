/**
 * An incremental Server-Sent Events parser (the subset of the WHATWG algorithm an OpenAI-compatible
 * stream needs). Feed it body chunks as they arrive; it returns the events each chunk completes.
 *
 * Handles: events split across chunks (even inside a multi-byte UTF-8 character or between the
 * `\r` and `\n` of a CRLF), several events in one chunk, `\n`, `\r\n` and `\r` line endings,
 * comment lines (`: keepalive`), multi-line `data`, `event:` names, and a BOM.
 */
export interface SseEvent {
  /** The `event:` field, "message" when absent. */
  readonly event: string;
  /** The `data:` lines joined with "\n". */
  readonly data: string;
}

export class SseParser {
  /** @param maxLineLength Longest line (or unfinished line) kept, in characters: beyond it `push` throws. */
  constructor(private readonly maxLineLength = Number.POSITIVE_INFINITY) {}

  private readonly decoder = new TextDecoder('utf-8');
  private buffer = '';
  private dataLines: string[] = [];
  private dataLength = 0;
  private eventName = '';
  private started = false;

  /** Parses a chunk; returns the events it completed (often none or one, sometimes many). */
  push(chunk: Uint8Array | string): SseEvent[] {
    let text = typeof chunk === 'string' ? chunk : this.decoder.decode(chunk, { stream: true });
    if (!this.started && text.length > 0) {
      this.started = true;
      if (text.charCodeAt(0) === 0xfeff) text = text.slice(1);
    }
    const events: SseEvent[] = [];
    const buf = this.buffer.length === 0 ? text : this.buffer + text;
    let start = 0;
    let lf = buf.indexOf('\n');
    let cr = buf.indexOf('\r');
    for (;;) {
      if (lf !== -1 && lf < start) lf = buf.indexOf('\n', start);
      if (cr !== -1 && cr < start) cr = buf.indexOf('\r', start);
      let end: number;
      let next: number;
      if (cr !== -1 && (lf === -1 || cr < lf)) {
        // A CR at the very end may be the first half of a CRLF: wait for the next chunk.
        if (cr === buf.length - 1) break;
        end = cr;
        next = lf === cr + 1 ? cr + 2 : cr + 1;
      } else if (lf !== -1) {
        end = lf;
        next = lf + 1;
      } else {
        break;
      }
      this.line(buf.slice(start, end), events);
      start = next;
    }
    this.buffer = start === 0 ? buf : buf.slice(start);
    if (this.buffer.length > this.maxLineLength) {
      throw new RangeError(`an event line is longer than ${this.maxLineLength} characters`);
    }
    return events;
  }

  /**
   * Ends the input. Unlike a browser, a last event that lacks its closing blank line is still
   * dispatched (some servers end the body right after `data: [DONE]`).
   */
  end(): SseEvent[] {
    const events: SseEvent[] = [];
    const rest = this.buffer + this.decoder.decode();
    this.buffer = '';
    if (rest.length > 0) {
      for (const line of rest.split(/\r\n|\r|\n/)) this.line(line, events);
    }
    this.line('', events);
    return events;
  }

  private line(line: string, events: SseEvent[]): void {
    if (line.length === 0) {
      if (this.dataLines.length > 0) {
        events.push({ event: this.eventName || 'message', data: this.dataLines.join('\n') });
      }
      this.dataLines = [];
      this.dataLength = 0;
      this.eventName = '';
      return;
    }
    if (line.charCodeAt(0) === 58 /* ':' */) return; // comment / keepalive
    const colon = line.indexOf(':');
    const field = colon === -1 ? line : line.slice(0, colon);
    let value = colon === -1 ? '' : line.slice(colon + 1);
    if (value.charCodeAt(0) === 32 /* ' ' */) value = value.slice(1);
    if (field === 'data') {
      this.dataLength += value.length + 1;
      if (this.dataLength > this.maxLineLength) throw new RangeError(`an event's data is longer than ${this.maxLineLength} characters`);
      this.dataLines.push(value);
    }
    else if (field === 'event') this.eventName = value;
    // `id` and `retry` mean nothing for a one-shot HTTP response.
  }
}
