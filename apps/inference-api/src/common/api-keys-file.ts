import { readFileSync } from 'node:fs';
import { Ajv } from 'ajv';
import { parse as parseYaml } from 'yaml';
import { type ApiKeyRecord, keyDigest } from './api-keys.js';

/**
 * API_KEYS_FILE: named keys, each with an optional rate limit and model list.
 *
 * ```yaml
 * keys:
 *   - name: search-team            # metrics and logs say this, never the key
 *     key: sk-search-...           # the key itself, or
 *     sha256: 9f86d08...           # its SHA-256 (hex or base64): the file then holds no secret
 *     rpm: 600                     # optional: this key's requests per minute (0: none); default RATE_LIMIT_RPM
 *     models: [llama-3-8b, embed]  # optional: the models it may use; default all
 * ```
 */
const fileSchema = {
  type: 'object',
  additionalProperties: false,
  required: ['keys'],
  properties: {
    keys: {
      type: 'array',
      minItems: 1,
      items: {
        type: 'object',
        additionalProperties: false,
        required: ['name'],
        properties: {
          name: { type: 'string', pattern: '^[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}$' },
          key: { type: 'string', pattern: '^[^\\s,]{8,}$' },
          sha256: { type: 'string', pattern: '^([0-9a-fA-F]{64}|[A-Za-z0-9+/]{43}=)$' },
          rpm: { type: 'integer', minimum: 0 },
          models: { type: 'array', minItems: 1, uniqueItems: true, items: { type: 'string', minLength: 1 } },
        },
        oneOf: [{ required: ['key'] }, { required: ['sha256'] }],
      },
    },
  },
} as const;

interface KeyEntry {
  readonly name: string;
  readonly key?: string;
  readonly sha256?: string;
  readonly rpm?: number;
  readonly models?: readonly string[];
}

const validateFile = new Ajv({ allErrors: true, strict: false }).compile(fileSchema);

/** What is wrong with the file; the message never contains a key. */
export class ApiKeysFileError extends Error {
  override readonly name = 'ApiKeysFileError';
}

/** Reads, validates and digests API_KEYS_FILE. Throws ApiKeysFileError naming the entry, never the key. */
export function loadApiKeysFile(path: string): ApiKeyRecord[] {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (error) {
    throw new ApiKeysFileError(`API_KEYS_FILE ${path} cannot be read (${(error as NodeJS.ErrnoException).code ?? 'error'})`);
  }
  return parseApiKeys(text, path);
}

export function parseApiKeys(text: string, path = 'API_KEYS_FILE'): ApiKeyRecord[] {
  let data: unknown;
  try {
    data = parseYaml(text);
  } catch (error) {
    // The parser's own message quotes the offending line, which may hold a key: only its position.
    const at = (error as { linePos?: Array<{ line: number; col: number }> }).linePos?.[0];
    throw new ApiKeysFileError(`API_KEYS_FILE ${path} is not valid YAML${at ? ` (line ${at.line}, column ${at.col})` : ''}`);
  }
  if (!validateFile(data)) {
    const entries = (data as { keys?: unknown } | null)?.keys;
    const problems = (validateFile.errors ?? [])
      // The branches of `oneOf` report their missing property each: the oneOf error says it once.
      .filter((e) => !e.schemaPath.includes('/oneOf/'))
      .map((e) => {
        const match = /^\/keys\/(\d+)(\/.*)?$/.exec(e.instancePath);
        if (match === null) return `${e.instancePath || '(root)'} ${e.message ?? 'is invalid'}`;
        const entry = Array.isArray(entries) ? (entries[Number(match[1])] as { name?: unknown } | undefined) : undefined;
        const label = typeof entry?.name === 'string' && /^[\w.@-]{1,64}$/.test(entry.name) ? ` ("${entry.name}")` : '';
        const field = match[2] ?? '';
        const extra = e.keyword === 'additionalProperties' ? ` (${String((e.params as { additionalProperty?: string }).additionalProperty)})` : '';
        const oneOf = e.keyword === 'oneOf' ? 'must have exactly one of `key` and `sha256`' : `${e.message ?? 'is invalid'}${extra}`;
        return `keys[${match[1]}]${label}${field.replaceAll('/', '.')} ${oneOf}`;
      });
    throw new ApiKeysFileError(`API_KEYS_FILE ${path}: ${[...new Set(problems)].join('; ')}`);
  }
  const entries = (data as { keys: KeyEntry[] }).keys;
  const names = new Set<string>();
  const digests = new Set<string>();
  return entries.map((entry, index) => {
    if (names.has(entry.name)) throw new ApiKeysFileError(`API_KEYS_FILE ${path}: keys[${index}] repeats the name "${entry.name}"`);
    names.add(entry.name);
    const digest = entry.key !== undefined ? keyDigest(entry.key) : normaliseDigest(entry.sha256 as string);
    if (digests.has(digest)) throw new ApiKeysFileError(`API_KEYS_FILE ${path}: keys[${index}] ("${entry.name}") is the same key as an earlier entry`);
    digests.add(digest);
    return { name: entry.name, digest, rpm: entry.rpm, models: entry.models === undefined ? undefined : new Set(entry.models) };
  });
}

/** A SHA-256 as hex or base64 → base64 (what keyDigest gives). */
function normaliseDigest(value: string): string {
  return value.length === 64 ? Buffer.from(value, 'hex').toString('base64') : value;
}
