import { Writable } from 'node:stream';
import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import { REDACTED_LOG_PATHS } from './bootstrap.js';

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
