/**
 * The bench's own HTTP client (node:http, keep-alive agents) for what wrk cannot measure:
 * SSE time to first token, whole-stream time, inter-chunk gaps, and headers such as X-Cache.
 */
import { Agent, type IncomingMessage, request } from 'node:http';

export interface JsonResponse {
  readonly status: number;
  readonly headers: Readonly<Record<string, string | string[] | undefined>>;
  readonly text: string;
  readonly ms: number;
}

export function keepAliveAgent(maxSockets: number): Agent {
  return new Agent({ keepAlive: true, maxSockets, maxFreeSockets: maxSockets, keepAliveMsecs: 30_000 });
}

/**
 * One POST of a JSON body on `agent`; `onResponse` reads the response and settles the promise.
 * A silent server fails the request after `timeoutMs` with `timeoutMessage`.
 */
function post<T>(
  agent: Agent,
  url: string,
  body: string,
  headers: Readonly<Record<string, string | number>>,
  timeoutMs: number,
  timeoutMessage: string,
  onResponse: (res: IncomingMessage, resolve: (value: T) => void) => void,
): Promise<T> {
  return new Promise((resolve, reject) => {
    const req = request(
      url,
      {
        method: 'POST',
        agent,
        headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body), ...headers },
        timeout: timeoutMs,
      },
      (res) => {
        res.on('error', reject);
        onResponse(res, resolve);
      },
    );
    req.on('timeout', () => req.destroy(new Error(timeoutMessage)));
    req.on('error', reject);
    req.end(body);
  });
}

/** One POST with a JSON body; resolves with the whole response. */
export function postJson(
  agent: Agent,
  url: string,
  body: string,
  headers: Readonly<Record<string, string>> = {},
  timeoutMs = 30_000,
): Promise<JsonResponse> {
  const started = performance.now();
  return post(agent, url, body, headers, timeoutMs, `POST ${url}: no answer after ${timeoutMs} ms`, (res, resolve) => {
    const chunks: Buffer[] = [];
    res.on('data', (chunk: Buffer) => chunks.push(chunk));
    res.on('end', () =>
      resolve({
        status: res.statusCode ?? 0,
        headers: res.headers,
        text: Buffer.concat(chunks).toString('utf8'),
        ms: performance.now() - started,
      }),
    );
  });
}

export interface StreamTiming {
  readonly status: number;
  /** Response headers received (ms from the request start). */
  readonly headersMs: number;
  /** First SSE event carrying non-empty content: the time to first token (ms). */
  readonly firstTokenMs: number;
  /** The whole stream, up to the end of the response (ms). */
  readonly totalMs: number;
  /** Longest silence between two body chunks (or before the first), ms. */
  readonly maxGapMs: number;
  readonly contentEvents: number;
  /** The stream ended with `data: [DONE]`. */
  readonly done: boolean;
  readonly headers: Readonly<Record<string, string | string[] | undefined>>;
}

const CONTENT = /"(?:content|text)":"[^"]/;

/** Sends one streaming request and times it (the body should set `"stream": true`). */
export function timeStream(
  agent: Agent,
  url: string,
  body: string,
  headers: Readonly<Record<string, string>> = {},
  timeoutMs = 60_000,
): Promise<StreamTiming> {
  const started = performance.now();
  const streamHeaders = { accept: 'text/event-stream', ...headers };
  return post(agent, url, body, streamHeaders, timeoutMs, `stream ${url}: silent for ${timeoutMs} ms`, (res, resolve) => {
    const headersMs = performance.now() - started;
    let last = headersMs;
    let maxGapMs = 0;
    let firstTokenMs = Number.NaN;
    let contentEvents = 0;
    let pending = '';
    let tail = '';
    res.setEncoding('utf8');
    res.on('data', (chunk: string) => {
      const now = performance.now() - started;
      if (now - last > maxGapMs) maxGapMs = now - last;
      last = now;
      tail = (tail + chunk).slice(-64);
      pending += chunk;
      let end = pending.indexOf('\n\n');
      while (end !== -1) {
        const event = pending.slice(0, end);
        pending = pending.slice(end + 2);
        if (event.startsWith('data: {') && CONTENT.test(event)) {
          contentEvents += 1;
          if (Number.isNaN(firstTokenMs)) firstTokenMs = now;
        }
        end = pending.indexOf('\n\n');
      }
    });
    res.on('end', () =>
      resolve({
        status: res.statusCode ?? 0,
        headersMs,
        firstTokenMs,
        totalMs: performance.now() - started,
        maxGapMs,
        contentEvents,
        done: tail.trimEnd().endsWith('data: [DONE]'),
        headers: res.headers,
      }),
    );
  });
}
