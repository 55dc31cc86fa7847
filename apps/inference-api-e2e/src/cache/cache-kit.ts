import { request } from 'node:http';
import { fakeReplyText } from '@infer/model-providers/testing';
import type { ApiServer } from '../support/api-server.js';

/** Shared helpers of the response-cache suites. */

/** Content tokens per fake-upstream reply in these suites. */
export const TOKENS = 8;

/** A models file with model `m` (and `m-short`, whose cacheTtlSeconds is 1) on the fake upstream. */
export function cacheModelsYaml(upstreamUrl: string): string {
  return [
    'router:',
    '  cooldownMs: 0',
    'models:',
    '  - name: m',
    '    deployments:',
    '      - provider: openai-compatible',
    `        baseUrl: ${upstreamUrl}`,
    '        model: fake',
    '  - name: m-short',
    '    cacheTtlSeconds: 1',
    '    deployments:',
    '      - provider: openai-compatible',
    `        baseUrl: ${upstreamUrl}`,
    '        model: fake',
    '',
  ].join('\n');
}

/** What the fake upstream answers to a one-message chat with `content`. */
export function expectedReply(content: string): string {
  return fakeReplyText(content, TOKENS);
}

let counter = 0;
/** A prompt no other test uses (so tests never see each other's entries). */
export function uniquePrompt(label: string): string {
  counter += 1;
  return `${label} #${counter} ${process.pid}-${Date.now()}`;
}

export interface ChatOptions {
  readonly model?: string;
  readonly stream?: boolean;
  readonly includeUsage?: boolean;
  readonly headers?: Readonly<Record<string, string>>;
  /** Extra body fields (temperature defaults to 0: cacheable). */
  readonly body?: Readonly<Record<string, unknown>>;
}

export interface ChatResponse {
  readonly status: number;
  readonly headers: Headers;
  readonly xCache: string | null;
  readonly age: string | null;
  /** The parsed JSON body (non-streamed, or an error). */
  readonly json: Record<string, unknown> | undefined;
  /** The raw SSE text (streamed). */
  readonly sse: string | undefined;
  /** The answer text: message content, or the concatenated stream deltas. */
  readonly content: string | undefined;
  /** When the request was sent (ms since the epoch) and how long it took. */
  readonly startedAt: number;
  readonly ms: number;
}

/** POST /v1/chat/completions with one user message. */
export async function chat(server: ApiServer, content: string, options: ChatOptions = {}): Promise<ChatResponse> {
  const started = Date.now();
  const res = await fetch(`${server.url}/v1/chat/completions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...options.headers },
    body: JSON.stringify({
      model: options.model ?? 'm',
      messages: [{ role: 'user', content }],
      temperature: 0,
      ...(options.stream ? { stream: true } : {}),
      ...(options.includeUsage ? { stream_options: { include_usage: true } } : {}),
      ...options.body,
    }),
  });
  const text = await res.text();
  const isSse = (res.headers.get('content-type') ?? '').startsWith('text/event-stream');
  let json: Record<string, unknown> | undefined;
  let answer: string | undefined;
  if (isSse) {
    answer = sseEvents(text)
      .filter((e): e is Record<string, unknown> => typeof e === 'object' && e !== null)
      .map((e) => ((e['choices'] as Array<{ delta?: { content?: string } }> | undefined)?.[0]?.delta?.content ?? ''))
      .join('');
  } else {
    json = JSON.parse(text) as Record<string, unknown>;
    answer = (json['choices'] as Array<{ message?: { content?: string } }> | undefined)?.[0]?.message?.content;
  }
  return {
    status: res.status,
    headers: res.headers,
    xCache: res.headers.get('x-cache'),
    age: res.headers.get('age'),
    json,
    sse: isSse ? text : undefined,
    content: answer,
    startedAt: started,
    ms: Date.now() - started,
  };
}

/** The `data:` payloads of an SSE body, parsed (`[DONE]` stays a string). */
export function sseEvents(text: string): unknown[] {
  const events: unknown[] = [];
  for (const block of text.split('\n\n')) {
    if (block.trim() === '') continue;
    if (!block.startsWith('data: ')) throw new Error(`not an SSE data event: ${JSON.stringify(block)}`);
    const data = block.slice(6);
    events.push(data === '[DONE]' ? data : JSON.parse(data));
  }
  return events;
}

/**
 * Asserts the OpenAI chat stream shape: role chunk, content chunks, a finish_reason chunk, the usage
 * chunk when asked, then [DONE]. Returns the content.
 */
export function checkChatStream(text: string, includeUsage: boolean): { content: string; finishReason: string; usage: unknown } {
  const events = sseEvents(text);
  const problems: string[] = [];
  if (events.at(-1) !== '[DONE]') problems.push('does not end with [DONE]');
  const chunks = events.slice(0, -1) as Array<Record<string, unknown>>;
  const choice = (chunk: Record<string, unknown> | undefined) =>
    (chunk?.['choices'] as Array<{ delta?: { role?: string; content?: string }; finish_reason?: string | null }> | undefined)?.[0];
  if (choice(chunks[0])?.delta?.role !== 'assistant') problems.push('first chunk is not the assistant role');
  let usage: unknown;
  if (includeUsage) {
    const last = chunks.pop();
    if (!Array.isArray(last?.['choices']) || (last['choices'] as unknown[]).length !== 0 || !last['usage']) problems.push('no usage chunk before [DONE]');
    usage = last?.['usage'];
  }
  const finish = chunks.pop();
  const finishReason = choice(finish)?.finish_reason;
  if (!finishReason) problems.push('no finish_reason chunk');
  let content = '';
  for (const chunk of chunks) {
    if (chunk['object'] !== 'chat.completion.chunk') problems.push(`bad object ${String(chunk['object'])}`);
    const c = choice(chunk);
    if (c?.finish_reason !== null) problems.push('finish_reason before the end');
    content += c?.delta?.content ?? '';
  }
  if (problems.length > 0) throw new Error(`malformed stream (${problems.join('; ')}):\n${text}`);
  return { content, finishReason: finishReason as string, usage };
}

/** Sends a streamed chat request and drops the connection once `afterBytes` bytes arrived. */
export function sendAndDrop(server: ApiServer, content: string, afterBytes: number): Promise<number> {
  return new Promise((resolve, reject) => {
    let received = 0;
    const req = request(`${server.url}/v1/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json' } }, (res) => {
      res.on('data', (chunk: Buffer) => {
        received += chunk.length;
        if (received >= afterBytes) {
          req.destroy();
          resolve(received);
        }
      });
      res.on('end', () => resolve(received));
    });
    req.on('error', () => resolve(received));
    req.setTimeout(10_000, () => reject(new Error('timeout')));
    req.end(JSON.stringify({ model: 'm', messages: [{ role: 'user', content }], temperature: 0, stream: true }));
  });
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
