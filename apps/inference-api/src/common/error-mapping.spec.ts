import { HttpException, NotFoundException } from '@nestjs/common';
import { ModelProviderError } from '@infer/model-providers';
import { Ajv, type ValidateFunction } from 'ajv';
import { describe, expect, it } from 'vitest';
import { chatCompletionRequestSchema, completionRequestSchema } from '../openai/openai.schemas.js';
import { ApiError } from './api-error.js';
import { mapError } from './error-mapping.js';

describe('mapError', () => {
  it('keeps API errors as they are', () => {
    expect(mapError(ApiError.modelNotFound('x'))).toEqual({
      status: 404,
      body: { error: { message: "The model 'x' does not exist or you do not have access to it.", type: 'invalid_request_error', param: 'model', code: 'model_not_found' } },
      unexpected: false,
    });
  });

  it('maps provider errors to statuses', () => {
    const cases: Array<[ConstructorParameters<typeof ModelProviderError>[1]['code'], number]> = [
      ['invalid_request', 400],
      ['context_length_exceeded', 400],
      ['rate_limited', 429],
      ['upstream_error', 502],
      ['upstream_unavailable', 502],
      ['no_deployment_available', 503],
      ['upstream_timeout', 504],
      ['internal', 500],
    ];
    for (const [code, status] of cases) {
      const mapped = mapError(new ModelProviderError('upstream said no', { code }));
      expect(mapped.status).toBe(status);
      expect(mapped.body.error.code).toBe(code === 'internal' ? 'internal_error' : code === 'rate_limited' ? 'rate_limit_exceeded' : code);
    }
  });

  it("shows a provider's publicMessage, its message for 4xx/429/503 codes, and a generic text for upstream failures", () => {
    const internal = 'openai-compatible(http://10.0.0.7:8000/v1, llama): upstream unavailable (ECONNREFUSED 10.0.0.7:8000)';
    const down = mapError(new ModelProviderError(internal, { code: 'upstream_unavailable' }), 'req-9');
    expect(down.body.error.message).toBe('The model server is unavailable; try again later (request id req-9).');
    expect(mapError(new ModelProviderError(internal, { code: 'upstream_timeout' }), 'req-9').body.error.message).toBe(
      'The model server did not answer in time (request id req-9).',
    );
    expect(mapError(new ModelProviderError(internal, { code: 'upstream_error' })).body.error.message).toBe('The model server failed to answer this request.');
    const said = mapError(new ModelProviderError(internal, { code: 'upstream_error', publicMessage: 'The model server returned an error (HTTP 500): GPU on fire' }));
    expect(said.body.error.message).toBe('The model server returned an error (HTTP 500): GPU on fire');
    for (const code of ['invalid_request', 'context_length_exceeded', 'rate_limited', 'no_deployment_available'] as const) {
      expect(mapError(new ModelProviderError('about the request', { code })).body.error.message).toBe('about the request');
    }
  });

  it("speaks OpenAI's codes where ours differ: rate_limited is rate_limit_exceeded, internal is internal_error", () => {
    expect(mapError(new ModelProviderError('slow down', { code: 'rate_limited' })).body.error).toMatchObject({ code: 'rate_limit_exceeded', type: 'rate_limit_error' });
    expect(mapError(new ModelProviderError('bug', { code: 'internal' })).body.error.code).toBe('internal_error');
  });

  it('never leaks the message of an unexpected error', () => {
    const mapped = mapError(new Error('secret stack detail at /srv/app.js:1'), 'req-1');
    expect(mapped.status).toBe(500);
    expect(mapped.unexpected).toBe(true);
    expect(JSON.stringify(mapped.body)).not.toContain('secret');
    expect(mapped.body.error.message).toContain('req-1');
  });

  it('maps Fastify validation, body size and JSON errors', () => {
    const validation = Object.assign(new Error('body/temperature must be <= 2'), {
      statusCode: 400,
      validation: [{ instancePath: '/temperature', message: 'must be <= 2', params: {} }],
      validationContext: 'body',
    });
    expect(mapError(validation).body.error).toEqual({
      message: "Invalid body 'temperature': must be <= 2",
      type: 'invalid_request_error',
      param: 'temperature',
      code: 'invalid_request',
    });
    const missing = Object.assign(new Error('x'), {
      statusCode: 400,
      validation: [{ instancePath: '/messages/0', message: "must have required property 'role'", params: { missingProperty: 'role' } }],
    });
    expect(mapError(missing).body.error.param).toBe('messages[0].role');
    const tooLarge = Object.assign(new Error('Request body is too large'), { statusCode: 413, code: 'FST_ERR_CTP_BODY_TOO_LARGE' });
    expect(mapError(tooLarge)).toMatchObject({ status: 413, body: { error: { code: 'request_too_large' } } });
    const badJson = Object.assign(new SyntaxError('Unexpected token } in JSON at position 1'), { statusCode: 400, code: 'FST_ERR_CTP_INVALID_JSON_BODY' });
    expect(mapError(badJson)).toMatchObject({ status: 400, body: { error: { code: 'invalid_json', type: 'invalid_request_error' } } });
  });

  it('reports the error of the oneOf branch the value was meant for, with the real schemas', () => {
    // The options bootstrap.ts gives Fastify's Ajv.
    const ajv = new Ajv({ coerceTypes: false, removeAdditional: false, useDefaults: true, allErrors: false, keywords: ['example'], strict: false });
    const chat = ajv.compile(chatCompletionRequestSchema);
    const completion = ajv.compile(completionRequestSchema);
    const message = (validate: ValidateFunction, body: unknown) => {
      expect(validate(body)).toBe(false);
      const error = Object.assign(new Error('x'), { statusCode: 400, validation: validate.errors, validationContext: 'body' });
      const { status, body: reply } = mapError(error);
      expect(status).toBe(400);
      return `${reply.error.param} ${reply.error.message}`;
    };
    const user = [{ role: 'user', content: 'hi' }];
    expect(message(completion, { model: 'm', prompt: Array.from({ length: 33 }, () => 'a') })).toBe("prompt Invalid body 'prompt': must NOT have more than 32 items");
    expect(message(completion, { model: 'm', prompt: [] })).toBe("prompt Invalid body 'prompt': must NOT have fewer than 1 items");
    expect(message(completion, { model: 'm', prompt: 5 })).toBe("prompt Invalid body 'prompt': must be string or array");
    expect(message(chat, { model: 'm', messages: [{ role: 'user', content: 5 }] })).toBe(
      "messages[0].content Invalid body 'messages[0].content': must be string or array",
    );
    expect(message(chat, { model: 'm', messages: [{ role: 'user', content: [{ type: 'image_url', image_url: { url: 'x' } }] }] })).toBe(
      "messages[0].content[0].type Invalid body 'messages[0].content[0].type': must be equal to one of the allowed values (text, refusal)",
    );
    expect(message(chat, { model: 'm', messages: user, stop: ['a', 'b', 'c', 'd', 'e'] })).toBe("stop Invalid body 'stop': must NOT have more than 4 items");
    // Errors outside any oneOf are reported as before.
    expect(message(chat, { model: 'm', messages: user, temperature: 3 })).toBe("temperature Invalid body 'temperature': must be <= 2");
  });

  it('unwraps Fastify errors that Nest wrapped in an HttpException', () => {
    const tooLarge = Object.assign(new Error('Request body is too large'), { statusCode: 413, code: 'FST_ERR_CTP_BODY_TOO_LARGE' });
    const wrapped = new HttpException(tooLarge.message, 413, { cause: tooLarge });
    expect(mapError(wrapped)).toMatchObject({ status: 413, body: { error: { code: 'request_too_large' } } });
  });

  it('maps Nest HTTP exceptions', () => {
    expect(mapError(new NotFoundException('Cannot GET /nope'))).toMatchObject({ status: 404, body: { error: { code: 'not_found' } } });
  });
});
