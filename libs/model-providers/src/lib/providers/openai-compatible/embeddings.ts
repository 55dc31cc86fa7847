/**
 * OpenAI's `/embeddings` on the wire: the request body, and the response read back into the
 * contract's EmbeddingResult. Vectors are asked for as floats; an upstream that answers base64
 * anyway (little-endian float32, OpenAI's encoding) is decoded.
 */
import type { EmbeddingRequest, EmbeddingResult } from '../../contract/model-provider.js';
import { malformedError } from './upstream-errors.js';

type JsonObject = Record<string, unknown>;

export function embeddingBody(request: EmbeddingRequest, model: string): string {
  const body: JsonObject = { ...request.extra, model, input: request.input, encoding_format: 'float' };
  if (request.dimensions !== undefined) body['dimensions'] = request.dimensions;
  return JSON.stringify(body);
}

/** A base64 string of little-endian float32 values, as numbers. */
export function decodeBase64Floats(text: string): number[] | undefined {
  const bytes = Buffer.from(text, 'base64');
  if (bytes.length % 4 !== 0) return undefined;
  const out = new Array<number>(bytes.length / 4);
  for (let i = 0; i < out.length; i++) out[i] = bytes.readFloatLE(i * 4);
  return out;
}

/** Encodes a vector as OpenAI's base64 (little-endian float32). */
export function encodeBase64Floats(vector: readonly number[]): string {
  const bytes = Buffer.allocUnsafe(vector.length * 4);
  for (let i = 0; i < vector.length; i++) bytes.writeFloatLE(vector[i] as number, i * 4);
  return bytes.toString('base64');
}

/**
 * Reads `{"data":[{"index","embedding"}...],"usage":{"prompt_tokens"}}`. The vectors are put in
 * input order by `index`; there must be exactly one per input, all of one length, all finite.
 */
export function parseEmbeddings(root: JsonObject, inputs: readonly string[], label: string): EmbeddingResult {
  const data = root['data'];
  if (!Array.isArray(data)) throw malformedError(label, 'no data array in the embeddings response');
  if (data.length !== inputs.length) throw malformedError(label, `${data.length} embeddings for ${inputs.length} inputs`);
  const embeddings = new Array<number[]>(inputs.length);
  data.forEach((item: unknown, position) => {
    const entry = item !== null && typeof item === 'object' ? (item as JsonObject) : {};
    const index = typeof entry['index'] === 'number' ? entry['index'] : position;
    const raw = entry['embedding'];
    const vector = typeof raw === 'string' ? decodeBase64Floats(raw) : Array.isArray(raw) ? (raw as unknown[]) : undefined;
    if (!vector || !vector.every((x) => typeof x === 'number' && Number.isFinite(x))) {
      throw malformedError(label, `data[${position}].embedding is not a vector of numbers`);
    }
    if (!Number.isInteger(index) || index < 0 || index >= inputs.length || embeddings[index] !== undefined) {
      throw malformedError(label, `data[${position}].index ${String(index)} is out of range or repeated`);
    }
    embeddings[index] = vector as number[];
  });
  const size = embeddings[0]?.length ?? 0;
  if (size === 0 || embeddings.some((v) => v.length !== size)) throw malformedError(label, 'the embeddings are empty or of different lengths');
  const usage = root['usage'] !== null && typeof root['usage'] === 'object' ? (root['usage'] as JsonObject) : {};
  const prompt = usage['prompt_tokens'];
  let promptTokens: number;
  if (typeof prompt === 'number' && Number.isFinite(prompt) && prompt >= 0) promptTokens = Math.round(prompt);
  else {
    let chars = 0;
    for (const text of inputs) chars += text.length;
    promptTokens = Math.ceil(chars / 4);
  }
  return { embeddings, usage: { promptTokens } };
}
