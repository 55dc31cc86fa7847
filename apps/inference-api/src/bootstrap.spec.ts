import type { IncomingMessage } from 'node:http';
import { Duplex, Writable } from 'node:stream';
import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import { REDACTED_LOG_PATHS, requestIdOf, writeClientError } from './bootstrap.js';

describe('log redaction', () => {
  it('never writes credentials or prompt/completion bodies', () => {
    const lines: string[] = [];
    const sink = new Writable({
      write(chunk: Buffer, _encoding, callback) {
        lines.push(chunk.toString());
        callback();
      },
    });
    const logger = pino({ redact: { paths: REDACTED_LOG_PATHS, censor: '[redacted]' } }, sink);
    logger.info({ req: { method: 'POST', url: '/v1/chat/completions', headers: { authorization: 'Bearer sk-secret', 'x-api-key': 'k-secret' }, body: { prompt: 'my secret prompt' } } });
    logger.info({ messages: [{ role: 'user', content: 'private words' }], prompt: 'private prompt', input_text: 'private input' });
    logger.info({ result: { text: 'private completion' } });
    // The Responses API's fields.
    logger.info({ input: 'private responses input', instructions: 'private instructions', request: { input: [{ role: 'user', content: 'x' }], instructions: 'nested instructions' } });
    const output = lines.join('');
    for (const secret of ['sk-secret', 'k-secret', 'my secret prompt', 'private words', 'private prompt', 'private input', 'private completion', 'private responses input', 'private instructions', 'nested instructions']) {
      expect(output).not.toContain(secret);
    }
    expect(output).toContain('[redacted]');
    expect(output).toContain('/v1/chat/completions');
  });
});

describe('request ids', () => {
  const of = (value?: string) => requestIdOf({ headers: value === undefined ? {} : { 'x-request-id': value } } as IncomingMessage);

  it("keeps a client's plain id and replaces anything else with a new UUID", () => {
    expect(of('my-id.123')).toBe('my-id.123');
    expect(of('trace:7f/span=1@svc+x')).toBe('trace:7f/span=1@svc+x');
    const uuid = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;
    for (const bad of [undefined, '', '<script>alert(1)</script>', 'a'.repeat(129), 'a b', 'line\nbreak', 'é']) expect(of(bad), String(bad)).toMatch(uuid);
  });
});

describe('writeClientError', () => {
  function socket() {
    let written = '';
    let destroyed = false;
    const duplex = new Duplex({
      read() {},
      write(chunk: Buffer, _encoding, callback) {
        written += chunk.toString();
        callback();
      },
    });
    duplex.destroy = ((error?: Error) => {
      destroyed = true;
      void error;
      return duplex;
    }) as typeof duplex.destroy;
    return { duplex, written: () => written, destroyed: () => destroyed };
  }

  it('answers what the HTTP parser refuses in the OpenAI shape, then closes the connection', () => {
    for (const [code, status, errorCode] of [
      ['ERR_HTTP_REQUEST_TIMEOUT', 408, 'request_timeout'],
      ['HPE_HEADER_OVERFLOW', 431, 'request_headers_too_large'],
      ['HPE_INVALID_HEADER_TOKEN', 400, 'invalid_http'],
    ] as const) {
      const s = socket();
      writeClientError(Object.assign(new Error('x'), { code }), s.duplex);
      const [head, body] = s.written().split('\r\n\r\n') as [string, string];
      expect(head.split('\r\n')[0]).toMatch(new RegExp(`^HTTP/1.1 ${status} `));
      expect(head).toContain(`Content-Length: ${Buffer.byteLength(body)}`);
      expect(head).toContain('Connection: close');
      const parsed = JSON.parse(body) as { error: Record<string, unknown> };
      expect(Object.keys(parsed.error).sort()).toEqual(['code', 'message', 'param', 'type']);
      expect(parsed.error['code']).toBe(errorCode);
      expect(s.destroyed()).toBe(true);
    }
    // A reset connection gets nothing.
    const reset = socket();
    writeClientError(Object.assign(new Error('x'), { code: 'ECONNRESET' }), reset.duplex);
    expect(reset.written()).toBe('');
  });
});
