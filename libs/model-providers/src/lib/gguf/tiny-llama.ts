/**
 * A tiny llama-architecture GGUF with seeded pseudo-random weights and a byte-level vocabulary.
 *
 * The text it generates is noise, but everything around it is real: llama.cpp loads it, tokenizes,
 * runs attention over a KV cache, samples, and stops on EOS or a stop sequence. Tests and the
 * out-of-the-box demo use it so that no download is ever needed.
 *
 * Shaping the noise (so it is safe to print, stream and compare):
 * - embedding dimension 0 is a constant "bias channel": every token embedding has the same value
 *   there and no layer writes to it, so after the final norm it acts as a per-token logit bias;
 * - the output rows of printable ASCII bytes (0x20-0x7E) and `▁` get random weights, EOS a small
 *   positive bias (rare at temperature 1, never chosen at temperature 0), and every other token a
 *   large negative bias: generated text is printable ASCII, never invalid UTF-8.
 */
import { randomUUID } from 'node:crypto';
import { mkdir, rename, rm, stat } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { gguf, layoutGguf, writeGgufFile, type GgmlTensorType, type GgufFile, type GgufMetadataValue, type GgufTensor } from './gguf-writer.js';

export interface TinyLlamaSpec {
  /** Shown as `general.name`. */
  readonly name: string;
  readonly embeddingLength: number;
  readonly blockCount: number;
  readonly headCount: number;
  /** Grouped-query attention when smaller than `headCount` (must divide it). */
  readonly headCountKv: number;
  readonly feedForwardLength: number;
  /** `llama.context_length`: the training context the model claims. */
  readonly contextLength: number;
  /** Type of the 2-D weight tensors (norms are always F32). */
  readonly tensorType: GgmlTensorType;
  readonly seed: number;
  readonly ropeFreqBase: number;
  readonly rmsNormEpsilon: number;
  /** Jinja `tokenizer.chat_template`. Keep it short: with a byte vocabulary one character is one token. */
  readonly chatTemplate: string;
}

/**
 * Zephyr-like and short: `<|user|>\nHi</s>\n<|assistant|>\n`. The message end is the EOS token,
 * which node-llama-cpp's Jinja wrapper turns into a stop trigger.
 */
export const TINY_LLAMA_CHAT_TEMPLATE =
  "{% for message in messages %}{{ '<|' + message['role'] + '|>\\n' + message['content'] + eos_token + '\\n' }}{% endfor %}" +
  "{% if add_generation_prompt %}{{ '<|assistant|>\\n' }}{% endif %}";

/** The built-in model: 64 wide, 2 layers, F32 (~0.2 MB). Loads in milliseconds, thousands of tokens/s on one thread. */
export const DEFAULT_TINY_LLAMA_SPEC: TinyLlamaSpec = Object.freeze({
  name: 'tiny-llama',
  embeddingLength: 64,
  blockCount: 2,
  headCount: 4,
  headCountKv: 4,
  feedForwardLength: 128,
  contextLength: 2048,
  tensorType: 'F32',
  seed: 42,
  ropeFreqBase: 10000,
  rmsNormEpsilon: 1e-5,
  chatTemplate: TINY_LLAMA_CHAT_TEMPLATE,
});

/** A heavier variant for benchmarks: 512 wide, 8 layers, F16 (~50 MB). */
export const LARGE_TINY_LLAMA_SPEC: TinyLlamaSpec = Object.freeze({
  ...DEFAULT_TINY_LLAMA_SPEC,
  name: 'tiny-llama-large',
  embeddingLength: 512,
  blockCount: 8,
  headCount: 8,
  headCountKv: 8,
  feedForwardLength: 1536,
  tensorType: 'F16',
});

/** Bump when the bytes produced for a given spec change (part of the file name). */
const TINY_LLAMA_FORMAT_VERSION = 1;

export const TINY_LLAMA_TOKENS = {
  unknown: 0,
  bos: 1,
  eos: 2,
  /** Token id of byte `b` is `firstByte + b`. */
  firstByte: 3,
  /** `▁` (U+2581), SentencePiece's space. */
  space: 259,
  vocabularySize: 260,
} as const;

export function resolveTinyLlamaSpec(spec: Partial<TinyLlamaSpec> = {}): TinyLlamaSpec {
  const resolved: TinyLlamaSpec = { ...DEFAULT_TINY_LLAMA_SPEC, ...dropUndefined(spec) };
  const positive = ['embeddingLength', 'blockCount', 'headCount', 'headCountKv', 'feedForwardLength', 'contextLength'] as const;
  for (const key of positive) {
    if (!Number.isSafeInteger(resolved[key]) || resolved[key] < 1) throw new RangeError(`TinyLlamaSpec.${key} must be a positive integer`);
  }
  if (resolved.embeddingLength % resolved.headCount !== 0) throw new RangeError('embeddingLength must be a multiple of headCount');
  if ((resolved.embeddingLength / resolved.headCount) % 2 !== 0) throw new RangeError('the head dimension must be even (RoPE)');
  if (resolved.headCount % resolved.headCountKv !== 0) throw new RangeError('headCount must be a multiple of headCountKv');
  if (resolved.tensorType === 'Q8_0' && (resolved.embeddingLength % 32 !== 0 || resolved.feedForwardLength % 32 !== 0)) {
    throw new RangeError('Q8_0 needs embeddingLength and feedForwardLength to be multiples of 32');
  }
  if (!Number.isInteger(resolved.seed)) throw new RangeError('TinyLlamaSpec.seed must be an integer');
  return resolved;
}

/** A file name unique to the spec (and to this generator's version), e.g. `tiny-llama-64x2-f32-1a2b3c4d.gguf`. */
export function tinyLlamaGgufFileName(spec: Partial<TinyLlamaSpec> = {}): string {
  const s = resolveTinyLlamaSpec(spec);
  const canonical = JSON.stringify([TINY_LLAMA_FORMAT_VERSION, ...Object.entries(s).sort(([a], [b]) => (a < b ? -1 : 1))]);
  const hash = fnv1a(canonical).toString(16).padStart(8, '0');
  return `tiny-llama-${s.embeddingLength}x${s.blockCount}-${s.tensorType.toLowerCase()}-${hash}.gguf`;
}

/** File name of the default built-in model. */
export const TINY_LLAMA_GGUF_FILE_NAME = tinyLlamaGgufFileName(DEFAULT_TINY_LLAMA_SPEC);

/** The GGUF description of a tiny model; tensor data is generated lazily, when written. */
export function buildTinyLlamaGguf(spec: Partial<TinyLlamaSpec> = {}): GgufFile {
  const s = resolveTinyLlamaSpec(spec);
  const E = s.embeddingLength;
  const F = s.feedForwardLength;
  const V = TINY_LLAMA_TOKENS.vocabularySize;
  const headDim = E / s.headCount;
  const kvDim = headDim * s.headCountKv;

  const tokens: string[] = ['<unk>', '<s>', '</s>'];
  for (let b = 0; b < 256; b++) tokens.push(`<0x${b.toString(16).toUpperCase().padStart(2, '0')}>`);
  tokens.push('\u2581');
  const tokenTypes = tokens.map((_, id) => (id === 0 ? 2 : id < 3 ? 3 : id < 259 ? 6 : 1));

  const metadata: Record<string, GgufMetadataValue> = {
    'general.architecture': gguf.string('llama'),
    'general.name': gguf.string(s.name),
    'general.file_type': gguf.uint32(FILE_TYPES[s.tensorType]),
    'llama.context_length': gguf.uint32(s.contextLength),
    'llama.embedding_length': gguf.uint32(E),
    'llama.block_count': gguf.uint32(s.blockCount),
    'llama.feed_forward_length': gguf.uint32(F),
    'llama.attention.head_count': gguf.uint32(s.headCount),
    'llama.attention.head_count_kv': gguf.uint32(s.headCountKv),
    'llama.rope.dimension_count': gguf.uint32(headDim),
    'llama.rope.freq_base': gguf.float32(s.ropeFreqBase),
    'llama.attention.layer_norm_rms_epsilon': gguf.float32(s.rmsNormEpsilon),
    'llama.vocab_size': gguf.uint32(V),
    'tokenizer.ggml.model': gguf.string('llama'),
    'tokenizer.ggml.tokens': gguf.strings(tokens),
    'tokenizer.ggml.scores': gguf.float32s(new Float32Array(V)),
    'tokenizer.ggml.token_type': gguf.int32s(tokenTypes),
    'tokenizer.ggml.unknown_token_id': gguf.uint32(TINY_LLAMA_TOKENS.unknown),
    'tokenizer.ggml.bos_token_id': gguf.uint32(TINY_LLAMA_TOKENS.bos),
    'tokenizer.ggml.eos_token_id': gguf.uint32(TINY_LLAMA_TOKENS.eos),
    'tokenizer.ggml.add_bos_token': gguf.bool(true),
    'tokenizer.ggml.add_eos_token': gguf.bool(false),
    'tokenizer.chat_template': gguf.string(s.chatTemplate),
  };

  const weights = new WeightFactory(s.seed);
  const matrix = s.tensorType;
  const tensors: GgufTensor[] = [
    { name: 'token_embd.weight', dims: [E, V], type: matrix, data: () => weights.embeddings(E, V) },
  ];
  for (let layer = 0; layer < s.blockCount; layer++) {
    const blk = `blk.${layer}`;
    tensors.push(
      { name: `${blk}.attn_norm.weight`, dims: [E], type: 'F32', data: () => weights.layerNorm(E) },
      { name: `${blk}.attn_q.weight`, dims: [E, E], type: matrix, data: () => weights.dense(`${blk}.attn_q`, E, E) },
      { name: `${blk}.attn_k.weight`, dims: [E, kvDim], type: matrix, data: () => weights.dense(`${blk}.attn_k`, E, kvDim) },
      { name: `${blk}.attn_v.weight`, dims: [E, kvDim], type: matrix, data: () => weights.dense(`${blk}.attn_v`, E, kvDim) },
      { name: `${blk}.attn_output.weight`, dims: [E, E], type: matrix, data: () => weights.residualOut(`${blk}.attn_output`, E, E) },
      { name: `${blk}.ffn_norm.weight`, dims: [E], type: 'F32', data: () => weights.layerNorm(E) },
      { name: `${blk}.ffn_gate.weight`, dims: [E, F], type: matrix, data: () => weights.dense(`${blk}.ffn_gate`, E, F) },
      { name: `${blk}.ffn_up.weight`, dims: [E, F], type: matrix, data: () => weights.dense(`${blk}.ffn_up`, E, F) },
      { name: `${blk}.ffn_down.weight`, dims: [F, E], type: matrix, data: () => weights.residualOut(`${blk}.ffn_down`, F, E) },
    );
  }
  tensors.push(
    { name: 'output_norm.weight', dims: [E], type: 'F32', data: () => new Float32Array(E).fill(1) },
    { name: 'output.weight', dims: [E, V], type: matrix, data: () => weights.output(E, V) },
  );
  return { metadata, tensors };
}

export interface TinyLlamaGgufInfo {
  readonly path: string;
  readonly size: number;
  readonly spec: TinyLlamaSpec;
}

/** Writes the model to `path` (atomically: a temporary file in the same folder, then a rename). */
export async function writeTinyLlamaGguf(path: string, spec: Partial<TinyLlamaSpec> = {}): Promise<TinyLlamaGgufInfo> {
  const resolved = resolveTinyLlamaSpec(spec);
  const { size } = await writeAtomically(path, buildTinyLlamaGguf(resolved));
  return { path, size, spec: resolved };
}

const ensuring = new Map<string, Promise<string>>();

/**
 * Returns `path` once it holds the model, writing it first when missing (or of the wrong size).
 * Safe to call from many processes at once (PM2 workers): each writes its own temporary file and
 * renames it into place, so a reader never sees a partial file and every writer produces the same bytes.
 */
export function ensureTinyLlamaGguf(path: string, spec: Partial<TinyLlamaSpec> = {}): Promise<string> {
  const key = `${path}\0${tinyLlamaGgufFileName(spec)}`;
  const pending = ensuring.get(key);
  if (pending) return pending;
  const promise = (async () => {
    const file = buildTinyLlamaGguf(spec);
    const expectedSize = layoutGguf(file).totalSize;
    try {
      const existing = await stat(path);
      if (existing.isFile() && existing.size === expectedSize) return path;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
    }
    await writeAtomically(path, file);
    return path;
  })().finally(() => ensuring.delete(key));
  ensuring.set(key, promise);
  return promise;
}

async function writeAtomically(path: string, file: GgufFile): Promise<{ readonly size: number }> {
  const dir = dirname(path);
  await mkdir(dir, { recursive: true });
  const temporary = join(dir, `.${basename(path)}.${process.pid}.${randomUUID()}.tmp`);
  try {
    const result = await writeGgufFile(temporary, file);
    await rename(temporary, path);
    return result;
  } catch (error) {
    await rm(temporary, { force: true });
    throw error;
  }
}

// ggml's LLAMA_FTYPE values for `general.file_type`.
const FILE_TYPES: Readonly<Record<GgmlTensorType, number>> = { F32: 0, F16: 1, Q8_0: 7 };

/**
 * The bias channel: embedding dimension 0 of every token is BIAS_CHANNEL_SCALE * sqrt(E), and no layer writes
 * to it. The other dimensions have a mean square of about RESIDUAL_MEAN_SQUARE (1 from the embeddings, a bit
 * more from the layers). After an RMS norm, dimension 0 is then about sqrt(E) * BIAS_SHARE and each other
 * dimension about OTHER_SHARE.
 */
const BIAS_CHANNEL_SCALE = 4;
const RESIDUAL_MEAN_SQUARE = 1.5;
const BIAS_SHARE = BIAS_CHANNEL_SCALE / Math.sqrt(BIAS_CHANNEL_SCALE ** 2 + RESIDUAL_MEAN_SQUARE);
const OTHER_SHARE = Math.sqrt(RESIDUAL_MEAN_SQUARE) / Math.sqrt(BIAS_CHANNEL_SCALE ** 2 + RESIDUAL_MEAN_SQUARE);
/** Standard deviation of the logits of the printable tokens. */
const LOGIT_STD = 3;
/** Logit bias of EOS (at temperature 1 a text ends about once in a few hundred tokens; never at temperature 0). */
const EOS_LOGIT_BIAS = 1.5;
/** Logit bias of the tokens the noise never produces. */
const BLOCKED_LOGIT_BIAS = -30;

/** Deterministic weights: each tensor draws from its own PRNG stream, seeded by the model seed and its name. */
class WeightFactory {
  constructor(private readonly seed: number) {}

  /** [E, V]: unit-variance rows, plus the constant bias channel in dimension 0. */
  embeddings(E: number, V: number): Float32Array {
    const data = this.uniform('token_embd', E * V, 1);
    for (let token = 0; token < V; token++) data[token * E] = BIAS_CHANNEL_SCALE * Math.sqrt(E);
    return data;
  }

  /** Norm weights in front of attention and feed-forward: hide the bias channel and bring the rest back to unit scale. */
  layerNorm(E: number): Float32Array {
    const data = new Float32Array(E).fill(1 / OTHER_SHARE);
    data[0] = 0;
    return data;
  }

  /** [inputs, outputs] with variance 1/inputs: the output keeps the input's scale. */
  dense(name: string, inputs: number, outputs: number): Float32Array {
    return this.uniform(name, inputs * outputs, 1 / Math.sqrt(inputs));
  }

  /** Like `dense`, into the residual stream: smaller, and writing nothing to dimension 0 (the bias channel). */
  residualOut(name: string, inputs: number, outputs: number): Float32Array {
    const data = this.uniform(name, inputs * outputs, 0.5 / Math.sqrt(inputs));
    data.fill(0, 0, inputs); // the first row is output dimension 0
    return data;
  }

  /** [E, V]: random rows for the printable tokens, a bias through dimension 0 for the others. */
  output(E: number, V: number): Float32Array {
    const data = this.uniform('output', E * V, LOGIT_STD / Math.sqrt(E) / OTHER_SHARE);
    const biasChannel = Math.sqrt(E) * BIAS_SHARE;
    for (let token = 0; token < V; token++) {
      const row = token * E;
      const byte = token - TINY_LLAMA_TOKENS.firstByte;
      const printable = token === TINY_LLAMA_TOKENS.space || (byte >= 0x20 && byte <= 0x7e);
      if (printable) {
        data[row] = 0;
      } else {
        data.fill(0, row, row + E);
        data[row] = (token === TINY_LLAMA_TOKENS.eos ? EOS_LOGIT_BIAS : BLOCKED_LOGIT_BIAS) / biasChannel;
      }
    }
    return data;
  }

  private uniform(name: string, count: number, std: number): Float32Array {
    const next = mulberry32((this.seed ^ fnv1a(name)) >>> 0);
    const amplitude = std * Math.sqrt(3); // uniform on [-a, a] has variance a²/3
    const data = new Float32Array(count);
    for (let i = 0; i < count; i++) data[i] = (next() * 2 - 1) * amplitude;
    return data;
  }
}

/** mulberry32: a tiny, fast, seedable 32-bit PRNG returning floats in [0, 1). */
export function mulberry32(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function fnv1a(text: string): number {
  let hash = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) {
    hash ^= text.charCodeAt(i);
    hash = Math.imul(hash, 0x01000193) >>> 0;
  }
  return hash >>> 0;
}

function dropUndefined<T extends object>(value: T): Partial<T> {
  return Object.fromEntries(Object.entries(value).filter(([, v]) => v !== undefined)) as Partial<T>;
}
