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

  it('refuses a schema that is not a valid JSON Schema, or whose $refs do not resolve, before compiling anything', async () => {
    const { llama, compiled } = fakeLlama();
    const cache = new GrammarCache(llama);
    const of = (value: object) => ({ kind: 'schema' as const, schema: value, key: JSON.stringify(value) });
    for (const [bad, message] of [
      [{ type: 'nope' }, /is not a valid JSON Schema at \/type: must be equal to one of the allowed values/],
      [{ enum: [] }, /at \/enum: must NOT have fewer than 1 items/],
      [{ oneOf: [] }, /at \/oneOf: must NOT have fewer than 1 items/],
      [{ type: 'object', properties: { a: { $ref: '#/$defs/missing' } } }, /can't resolve reference #\/\$defs\/missing/],
    ] as Array<[object, RegExp]>) {
      const error = (await cache.get(of(bad)).then(
        () => undefined,
        (e: unknown) => e,
      )) as ModelProviderError;
      expect(error, JSON.stringify(bad)).toMatchObject({ code: 'invalid_request', param: 'response_format.json_schema.schema' });
      expect(error.message, JSON.stringify(bad)).toMatch(message);
    }
    expect(compiled).toEqual([]);
    // Valid ones compile, whatever draft their $schema names; $refs to $defs resolve; checking twice is fine.
    const good = { $schema: 'https://json-schema.org/draft/2020-12/schema', type: 'object', properties: { a: { $ref: '#/$defs/b' } }, $defs: { b: { type: 'string' } } };
    await cache.get(of(good));
    await cache.get(of({ ...good, required: ['a'] }));
    expect(compiled).toHaveLength(2);
    // An $id seen in one schema does not make another with the same $id "already exist".
    const withId = (n: number) => ({ type: 'object', properties: { n: { $id: 'https://example.com/n', const: n } } });
    await cache.get(of(withId(1)));
    await cache.get(of(withId(2)));
    expect(compiled).toHaveLength(4);
  });
});
