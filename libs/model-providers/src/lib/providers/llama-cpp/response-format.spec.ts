import type { Llama, LlamaGrammar } from 'node-llama-cpp';
import { describe, expect, it } from 'vitest';
import { ModelProviderError } from '../../contract/errors.js';
import { GrammarCache, responseFormatOf } from './response-format.js';

describe('responseFormatOf', () => {
  it('reads text, json_object and json_schema', () => {
    expect(responseFormatOf(undefined)).toBeUndefined();
    expect(responseFormatOf({ user: 'u' })).toBeUndefined();
    expect(responseFormatOf({ response_format: null })).toBeUndefined();
    expect(responseFormatOf({ response_format: { type: 'text' } })).toBeUndefined();
    expect(responseFormatOf({ response_format: { type: 'json_object' } })).toEqual({ kind: 'json' });
    expect(responseFormatOf({ response_format: { type: 'json_schema', json_schema: { name: 'n' } } })).toEqual({ kind: 'json' });
    const schema = { type: 'object', properties: { a: { type: 'string' } } };
    expect(responseFormatOf({ response_format: { type: 'json_schema', json_schema: { name: 'n', schema, strict: true } } })).toEqual({
      kind: 'schema',
      schema,
      key: JSON.stringify(schema),
    });
  });

  it('rejects anything else as invalid_request, naming the field', () => {
    for (const [response_format, param] of [
      ['json_object', 'response_format'],
      [[], 'response_format'],
      [{}, 'response_format.type'],
      [{ type: 'yaml' }, 'response_format.type'],
      [{ type: 'json_schema', json_schema: [] }, 'response_format.json_schema'],
      [{ type: 'json_schema', json_schema: { schema: true } }, 'response_format.json_schema.schema'],
    ] as const) {
      let error: unknown;
      try {
        responseFormatOf({ response_format });
      } catch (e) {
        error = e;
      }
      expect(error, JSON.stringify(response_format)).toBeInstanceOf(ModelProviderError);
      expect(error).toMatchObject({ code: 'invalid_request', param });
    }
  });
});

describe('GrammarCache', () => {
  function fakeLlama(): { llama: Llama; compiled: string[] } {
    const compiled: string[] = [];
    const grammar = (name: string): Promise<LlamaGrammar> => {
      compiled.push(name);
      return name.includes('"fail"') ? Promise.reject(new Error('bad schema')) : Promise.resolve({ name } as unknown as LlamaGrammar);
    };
    const llama = {
      getGrammarFor: (type: string) => grammar(type),
      createGrammarForJsonSchema: (schema: object) => grammar(JSON.stringify(schema)),
    } as unknown as Llama;
    return { llama, compiled };
  }
  const schema = (n: number) => ({ kind: 'schema' as const, schema: { const: n }, key: JSON.stringify({ const: n }) });

  it('compiles each schema once, shares a compilation in progress, and drops the least recently used', async () => {
    const { llama, compiled } = fakeLlama();
    const cache = new GrammarCache(llama, 2);
    const [a, b] = await Promise.all([cache.get(schema(1)), cache.get(schema(1))]);
    expect(a).toBe(b);
    await cache.get({ kind: 'json' });
    await cache.get({ kind: 'json' });
    expect(compiled).toEqual(['{"const":1}', 'json']);
    await cache.get(schema(1)); // now the most recent
    await cache.get(schema(2)); // evicts 'json'
    expect(cache.size).toBe(2);
    await cache.get(schema(1));
    await cache.get({ kind: 'json' });
    expect(compiled).toEqual(['{"const":1}', 'json', '{"const":2}', 'json']);
  });

  it('a failed compilation is an invalid_request and is not kept', async () => {
    const { llama, compiled } = fakeLlama();
    const cache = new GrammarCache(llama);
    const failing = { kind: 'schema' as const, schema: { const: 'fail' }, key: '{"const":"fail"}' };
    await expect(cache.get(failing)).rejects.toMatchObject({ code: 'invalid_request', param: 'response_format' });
    expect(cache.size).toBe(0);
    await expect(cache.get(failing)).rejects.toBeInstanceOf(ModelProviderError);
    expect(compiled).toHaveLength(2);
  });
});
