import { Ajv } from 'ajv';
import type { Llama, LlamaGrammar } from 'node-llama-cpp';
import { ModelProviderError } from '../../contract/errors.js';

/**
 * A checker of schemas against JSON Schema itself (draft-07 meta-schema) before they become
 * grammars. A fresh one per check (only when a schema is first seen: grammars are cached): Ajv
 * keeps every `$id` it met, so a shared one would grow with clients' schemas and refuse a valid
 * schema whose `$id` an earlier one used.
 */
const schemaChecker = () => new Ajv({ strict: false, allErrors: false, validateFormats: false });

/** What OpenAI's `response_format` asks of the generated text, when it asks for JSON. */
export type ResponseFormat = { readonly kind: 'json' } | { readonly kind: 'schema'; readonly schema: object; readonly key: string };

const JSON_FORMAT: ResponseFormat = Object.freeze({ kind: 'json' });

/**
 * Reads OpenAI's `response_format` from the request's pass-through parameters (`extra`):
 * `{"type":"text"}` (or none) → undefined; `{"type":"json_object"}` → any JSON value;
 * `{"type":"json_schema","json_schema":{"name":…,"schema":{…}}}` → JSON that matches the schema
 * (without a schema: any JSON value). Anything else is an 'invalid_request' error naming the field.
 */
export function responseFormatOf(extra: Readonly<Record<string, unknown>> | undefined): ResponseFormat | undefined {
  const value = extra?.['response_format'];
  if (value === undefined || value === null) return undefined;
  if (typeof value !== 'object' || Array.isArray(value)) {
    throw invalid('response_format must be an object, e.g. {"type":"json_object"}', 'response_format');
  }
  const type = (value as Record<string, unknown>)['type'];
  switch (type) {
    case 'text':
      return undefined;
    case 'json_object':
      return JSON_FORMAT;
    case 'json_schema': {
      const spec = (value as Record<string, unknown>)['json_schema'];
      if (spec === null || typeof spec !== 'object' || Array.isArray(spec)) {
        throw invalid('response_format.json_schema must be an object with a `schema`', 'response_format.json_schema');
      }
      const schema = (spec as Record<string, unknown>)['schema'];
      if (schema === undefined || schema === null) return JSON_FORMAT;
      if (typeof schema !== 'object' || Array.isArray(schema)) {
        throw invalid('response_format.json_schema.schema must be a JSON Schema object', 'response_format.json_schema.schema');
      }
      return { kind: 'schema', schema, key: JSON.stringify(schema) };
    }
    default:
      throw invalid(`response_format.type must be 'text', 'json_object' or 'json_schema' (got ${JSON.stringify(type)})`, 'response_format.type');
  }
}

/**
 * The grammars that constrain sampling to a response format, compiled once per schema and kept
 * (most applications send a handful of schemas; the least recently used goes beyond `maxEntries`).
 * node-llama-cpp turns a JSON Schema into a GBNF grammar; it understands a subset of JSON Schema
 * (types, properties, enum, const, oneOf, arrays with min/maxItems, $ref to $defs, string formats),
 * makes every listed property required and `additionalProperties` false unless set, and ignores
 * the keywords it does not know (anyOf, pattern, ...).
 */
export class GrammarCache {
  private readonly grammars = new Map<string, Promise<LlamaGrammar>>();

  constructor(
    private readonly llama: Llama,
    private readonly maxEntries = 64,
  ) {}

  get size(): number {
    return this.grammars.size;
  }

  /**
   * Throws (an 'invalid_request') when the format's schema cannot be used: called when a request is
   * prepared, so the 400 comes before any sequence is taken or any byte is streamed. Free for a
   * schema already compiled.
   */
  check(format: ResponseFormat | undefined): void {
    if (format?.kind === 'schema' && !this.grammars.has(format.key)) assertJsonSchema(format.schema);
  }

  get(format: ResponseFormat): Promise<LlamaGrammar> {
    const key = format.kind === 'json' ? '' : format.key;
    const cached = this.grammars.get(key);
    if (cached) {
      this.grammars.delete(key);
      this.grammars.set(key, cached);
      return cached;
    }
    // node-llama-cpp makes a grammar of anything (`{"type":"nope"}` gave `null`, `{"enum":[]}` an empty
    // answer): a schema that is not a valid JSON Schema, or whose $refs do not resolve, is a 400.
    try {
      this.check(format);
    } catch (error) {
      return Promise.reject(error);
    }
    const compiled = (format.kind === 'json' ? this.llama.getGrammarFor('json') : this.llama.createGrammarForJsonSchema(format.schema as never)).catch(
      (error: unknown) => {
        this.grammars.delete(key);
        throw invalid(
          `response_format cannot be turned into a grammar: ${error instanceof Error ? error.message : String(error)}`,
          'response_format',
          error,
        );
      },
    );
    this.grammars.set(key, compiled);
    if (this.grammars.size > this.maxEntries) this.grammars.delete(this.grammars.keys().next().value as string);
    return compiled;
  }
}

function assertJsonSchema(given: object): void {
  const param = 'response_format.json_schema.schema';
  // Whatever draft it names (zod-to-json-schema says draft-07, others 2020-12), it is checked as draft-07.
  const { $schema: _draft, ...schema } = given as Record<string, unknown>;
  const checker = schemaChecker();
  if (!checker.validateSchema(schema)) {
    const first = checker.errors?.[0];
    const where = first?.instancePath ? ` at ${first.instancePath}` : '';
    throw invalid(`${param} is not a valid JSON Schema${where}: ${first?.message ?? 'invalid'}`, param);
  }
  try {
    checker.compile(schema);
  } catch (error) {
    throw invalid(`${param} is not a valid JSON Schema: ${error instanceof Error ? error.message : String(error)}`, param, error);
  }
}

function invalid(message: string, param: string, cause?: unknown): ModelProviderError {
  return new ModelProviderError(message, { code: 'invalid_request', param, ...(cause === undefined ? {} : { cause }) });
}
