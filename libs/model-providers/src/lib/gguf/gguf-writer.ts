/**
 * A small GGUF v3 writer (https://github.com/ggml-org/ggml/blob/master/docs/gguf.md).
 *
 * Layout written:
 *   header       "GGUF", u32 version = 3, u64 tensor count, u64 metadata count
 *   metadata     key (u64 length + UTF-8), u32 value type, value
 *   tensor infos name, u32 n_dims, u64 ne[n_dims] (ggml order: ne[0] varies fastest), u32 ggml type,
 *                u64 offset relative to the data section (a multiple of the alignment)
 *   padding      up to the alignment
 *   data         each tensor's bytes, each padded to the alignment
 *
 * Everything is little-endian. Tensor data can be given lazily (a function), so a large file is
 * streamed tensor by tensor instead of being built in memory.
 */
import { open, type FileHandle } from 'node:fs/promises';

export const GGUF_MAGIC = 0x46554747; // "GGUF" read as a little-endian u32
export const GGUF_VERSION = 3;
export const GGUF_DEFAULT_ALIGNMENT = 32;

/** GGUF metadata value type ids. */
export const GGUF_VALUE_TYPE_IDS = {
  uint8: 0,
  int8: 1,
  uint16: 2,
  int16: 3,
  uint32: 4,
  int32: 5,
  float32: 6,
  bool: 7,
  string: 8,
  array: 9,
  uint64: 10,
  int64: 11,
  float64: 12,
} as const;

export type GgufNumberType = 'uint8' | 'int8' | 'uint16' | 'int16' | 'uint32' | 'int32' | 'float32' | 'float64';
export type GgufBigIntType = 'uint64' | 'int64';
export type GgufScalarType = GgufNumberType | GgufBigIntType | 'bool' | 'string';

export type GgufMetadataValue =
  | { readonly type: GgufNumberType; readonly value: number }
  | { readonly type: GgufBigIntType; readonly value: number | bigint }
  | { readonly type: 'bool'; readonly value: boolean }
  | { readonly type: 'string'; readonly value: string }
  | { readonly type: 'array'; readonly itemType: GgufNumberType; readonly values: ArrayLike<number> }
  | { readonly type: 'array'; readonly itemType: GgufBigIntType; readonly values: ArrayLike<number | bigint> }
  | { readonly type: 'array'; readonly itemType: 'bool'; readonly values: readonly boolean[] }
  | { readonly type: 'array'; readonly itemType: 'string'; readonly values: readonly string[] };

/** Helpers to build typed metadata values: `gguf.uint32(2)`, `gguf.strings(['a'])`, ... */
export const gguf = {
  uint8: (value: number) => ({ type: 'uint8', value }) as const,
  int8: (value: number) => ({ type: 'int8', value }) as const,
  uint16: (value: number) => ({ type: 'uint16', value }) as const,
  int16: (value: number) => ({ type: 'int16', value }) as const,
  uint32: (value: number) => ({ type: 'uint32', value }) as const,
  int32: (value: number) => ({ type: 'int32', value }) as const,
  uint64: (value: number | bigint) => ({ type: 'uint64', value }) as const,
  int64: (value: number | bigint) => ({ type: 'int64', value }) as const,
  float32: (value: number) => ({ type: 'float32', value }) as const,
  float64: (value: number) => ({ type: 'float64', value }) as const,
  bool: (value: boolean) => ({ type: 'bool', value }) as const,
  string: (value: string) => ({ type: 'string', value }) as const,
  strings: (values: readonly string[]) => ({ type: 'array', itemType: 'string', values }) as const,
  float32s: (values: ArrayLike<number>) => ({ type: 'array', itemType: 'float32', values }) as const,
  int32s: (values: ArrayLike<number>) => ({ type: 'array', itemType: 'int32', values }) as const,
  uint32s: (values: ArrayLike<number>) => ({ type: 'array', itemType: 'uint32', values }) as const,
  array: <T extends GgufNumberType>(itemType: T, values: ArrayLike<number>) => ({ type: 'array', itemType, values }) as const,
} satisfies Record<string, (...args: never[]) => GgufMetadataValue>;

/** ggml tensor types this writer can encode from float data. */
export const GGML_TENSOR_TYPE_IDS = { F32: 0, F16: 1, Q8_0: 8 } as const;
export type GgmlTensorType = keyof typeof GGML_TENSOR_TYPE_IDS;

export interface GgufTensor {
  readonly name: string;
  /** Dimensions in ggml order (`ne[0]` is the fastest-varying one). 1 to 4 of them. */
  readonly dims: readonly number[];
  readonly type: GgmlTensorType;
  /** Row-major float data (ne[0] fastest), encoded to `type` on write; a function is called once, when written. */
  readonly data: Float32Array | (() => Float32Array);
}

export interface GgufFile {
  /** Written in insertion order. `general.alignment` is added (first) when missing. */
  readonly metadata: Readonly<Record<string, GgufMetadataValue>>;
  readonly tensors: readonly GgufTensor[];
  /** Defaults to `general.alignment` from the metadata, else 32. */
  readonly alignment?: number;
}

const Q8_0_BLOCK = 32;

/** Bytes taken by `count` elements of `type` (Q8_0: blocks of 32 → 2-byte f16 scale + 32 int8). */
export function ggmlTensorByteSize(type: GgmlTensorType, count: number): number {
  switch (type) {
    case 'F32':
      return count * 4;
    case 'F16':
      return count * 2;
    case 'Q8_0':
      if (count % Q8_0_BLOCK !== 0) throw new RangeError(`Q8_0 needs a multiple of ${Q8_0_BLOCK} elements, got ${count}`);
      return (count / Q8_0_BLOCK) * (2 + Q8_0_BLOCK);
  }
}

export function alignUp(value: number, alignment: number): number {
  return Math.ceil(value / alignment) * alignment;
}

/** Where each part of the file lands, computed without touching tensor data. */
export interface GgufLayout {
  readonly alignment: number;
  /** Bytes of header + metadata + tensor infos, before the padding that precedes the data section. */
  readonly headerBytes: Uint8Array;
  readonly dataOffset: number;
  readonly tensors: readonly { readonly tensor: GgufTensor; readonly offset: number; readonly byteSize: number }[];
  readonly totalSize: number;
}

export function layoutGguf(file: GgufFile): GgufLayout {
  const metadata = withAlignment(file);
  const alignment = alignmentOf(metadata);
  const names = new Set<string>();
  let offset = 0;
  const tensors = file.tensors.map((tensor) => {
    validateTensor(tensor, names);
    const byteSize = ggmlTensorByteSize(tensor.type, elementCount(tensor.dims));
    const placed = { tensor, offset, byteSize };
    offset = alignUp(offset + byteSize, alignment);
    return placed;
  });

  const w = new ByteWriter();
  w.u32(GGUF_MAGIC);
  w.u32(GGUF_VERSION);
  w.u64(file.tensors.length);
  const entries = Object.entries(metadata);
  w.u64(entries.length);
  for (const [key, value] of entries) {
    w.string(key);
    writeValue(w, key, value);
  }
  for (const { tensor, offset: tensorOffset } of tensors) {
    w.string(tensor.name);
    w.u32(tensor.dims.length);
    for (const dim of tensor.dims) w.u64(dim);
    w.u32(GGML_TENSOR_TYPE_IDS[tensor.type]);
    w.u64(tensorOffset);
  }
  const headerBytes = w.bytes();
  const dataOffset = alignUp(headerBytes.length, alignment);
  return { alignment, headerBytes, dataOffset, tensors, totalSize: dataOffset + offset };
}

/** The whole file in memory. Fine for small models; use `writeGgufFile` for large ones. */
export function encodeGguf(file: GgufFile): Uint8Array {
  const layout = layoutGguf(file);
  const out = new Uint8Array(layout.totalSize);
  out.set(layout.headerBytes, 0);
  for (const { tensor, offset } of layout.tensors) {
    out.set(encodeTensorData(tensor), layout.dataOffset + offset);
  }
  return out;
}

/** Streams the file to `path` (created or truncated), one tensor at a time. */
export async function writeGgufFile(path: string, file: GgufFile): Promise<{ readonly size: number }> {
  const layout = layoutGguf(file);
  const handle = await open(path, 'w');
  try {
    let position = 0;
    const write = async (bytes: Uint8Array): Promise<void> => {
      await writeFully(handle, bytes, position);
      position += bytes.length;
    };
    await write(layout.headerBytes);
    await write(new Uint8Array(layout.dataOffset - layout.headerBytes.length));
    for (const { tensor, offset } of layout.tensors) {
      const padding = layout.dataOffset + offset - position;
      if (padding > 0) await write(new Uint8Array(padding));
      await write(encodeTensorData(tensor));
    }
    if (layout.totalSize > position) await write(new Uint8Array(layout.totalSize - position));
    await handle.sync();
  } finally {
    await handle.close();
  }
  return { size: layout.totalSize };
}

/** Encodes a tensor's float data to its ggml type. */
export function encodeTensorData(tensor: GgufTensor): Uint8Array {
  const data = typeof tensor.data === 'function' ? tensor.data() : tensor.data;
  const count = elementCount(tensor.dims);
  if (data.length !== count) {
    throw new RangeError(`Tensor "${tensor.name}": ${data.length} values for dims [${tensor.dims.join(', ')}] (${count})`);
  }
  switch (tensor.type) {
    case 'F32': {
      const out = new Uint8Array(count * 4);
      const view = new DataView(out.buffer);
      for (let i = 0; i < count; i++) view.setFloat32(i * 4, data[i] ?? 0, true);
      return out;
    }
    case 'F16': {
      const out = new Uint8Array(count * 2);
      const view = new DataView(out.buffer);
      for (let i = 0; i < count; i++) view.setUint16(i * 2, float32ToFloat16Bits(data[i] ?? 0), true);
      return out;
    }
    case 'Q8_0': {
      const out = new Uint8Array(ggmlTensorByteSize('Q8_0', count));
      const view = new DataView(out.buffer);
      for (let block = 0; block < count / Q8_0_BLOCK; block++) {
        const start = block * Q8_0_BLOCK;
        let amax = 0;
        for (let j = 0; j < Q8_0_BLOCK; j++) amax = Math.max(amax, Math.abs(data[start + j] ?? 0));
        const scale = amax / 127;
        const inverse = scale === 0 ? 0 : 1 / scale;
        const at = block * (2 + Q8_0_BLOCK);
        view.setUint16(at, float32ToFloat16Bits(scale), true);
        for (let j = 0; j < Q8_0_BLOCK; j++) view.setInt8(at + 2 + j, Math.round((data[start + j] ?? 0) * inverse));
      }
      return out;
    }
  }
}

const f32 = new Float32Array(1);
const f32Bits = new Uint32Array(f32.buffer);

/** IEEE 754 binary16 bits of `value` (rounded to nearest even; overflow → ±Infinity; NaN kept). */
export function float32ToFloat16Bits(value: number): number {
  f32[0] = value;
  const x = f32Bits[0] ?? 0;
  const sign = (x >>> 16) & 0x8000;
  const exponent = (x >>> 23) & 0xff;
  let mantissa = x & 0x7fffff;

  if (exponent === 0xff) return sign | 0x7c00 | (mantissa !== 0 ? 0x200 : 0); // Inf / NaN
  const e = exponent - 127 + 15;
  if (e >= 0x1f) return sign | 0x7c00; // overflow
  if (e <= 0) {
    // Subnormal half (or zero).
    if (e < -10) return sign;
    mantissa |= 0x800000;
    const shift = 14 - e;
    let half = mantissa >>> shift;
    const remainder = mantissa & ((1 << shift) - 1);
    const halfway = 1 << (shift - 1);
    if (remainder > halfway || (remainder === halfway && (half & 1) === 1)) half++;
    return sign | half;
  }
  let half = (e << 10) | (mantissa >>> 13);
  const remainder = mantissa & 0x1fff;
  if (remainder > 0x1000 || (remainder === 0x1000 && (half & 1) === 1)) half++; // may carry into the exponent: correct
  return sign | half;
}

/** Inverse of `float32ToFloat16Bits`, for tests and checks. */
export function float16BitsToFloat32(bits: number): number {
  const sign = bits & 0x8000 ? -1 : 1;
  const exponent = (bits >>> 10) & 0x1f;
  const mantissa = bits & 0x3ff;
  if (exponent === 0) return sign * mantissa * 2 ** -24;
  if (exponent === 0x1f) return mantissa === 0 ? sign * Infinity : NaN;
  return sign * (1 + mantissa / 1024) * 2 ** (exponent - 15);
}

function withAlignment(file: GgufFile): Readonly<Record<string, GgufMetadataValue>> {
  const existing = file.metadata['general.alignment'];
  if (existing) {
    if (file.alignment !== undefined && (existing.type !== 'uint32' || existing.value !== file.alignment)) {
      throw new RangeError(`general.alignment in the metadata disagrees with alignment ${file.alignment}`);
    }
    return file.metadata;
  }
  return { 'general.alignment': gguf.uint32(file.alignment ?? GGUF_DEFAULT_ALIGNMENT), ...file.metadata };
}

function alignmentOf(metadata: Readonly<Record<string, GgufMetadataValue>>): number {
  const value = metadata['general.alignment'];
  if (!value || value.type !== 'uint32') throw new RangeError('general.alignment must be a uint32');
  const alignment = value.value;
  if (!Number.isInteger(alignment) || alignment < 8 || alignment % 8 !== 0) {
    throw new RangeError(`general.alignment must be a positive multiple of 8, got ${alignment}`);
  }
  return alignment;
}

function elementCount(dims: readonly number[]): number {
  return dims.reduce((product, dim) => product * dim, 1);
}

function validateTensor(tensor: GgufTensor, names: Set<string>): void {
  if (names.has(tensor.name)) throw new RangeError(`Duplicate tensor name "${tensor.name}"`);
  names.add(tensor.name);
  if (tensor.dims.length < 1 || tensor.dims.length > 4) {
    throw new RangeError(`Tensor "${tensor.name}" must have 1 to 4 dimensions`);
  }
  for (const dim of tensor.dims) {
    if (!Number.isSafeInteger(dim) || dim < 1) throw new RangeError(`Tensor "${tensor.name}" has an invalid dimension ${dim}`);
  }
  if (tensor.type === 'Q8_0' && (tensor.dims[0] ?? 0) % Q8_0_BLOCK !== 0) {
    throw new RangeError(`Tensor "${tensor.name}": Q8_0 needs ne[0] to be a multiple of ${Q8_0_BLOCK}`);
  }
}

function writeValue(w: ByteWriter, key: string, value: GgufMetadataValue): void {
  if (value.type === 'array') {
    w.u32(GGUF_VALUE_TYPE_IDS.array);
    w.u32(GGUF_VALUE_TYPE_IDS[value.itemType]);
    w.u64(value.values.length);
    for (let i = 0; i < value.values.length; i++) {
      const item = value.values[i];
      if (item === undefined) throw new RangeError(`${key}[${i}] is undefined`);
      writeScalar(w, key, value.itemType, item);
    }
    return;
  }
  w.u32(GGUF_VALUE_TYPE_IDS[value.type]);
  writeScalar(w, key, value.type, value.value);
}

function writeScalar(w: ByteWriter, key: string, type: GgufScalarType, value: number | bigint | boolean | string): void {
  switch (type) {
    case 'string':
      if (typeof value !== 'string') throw new TypeError(`${key}: expected a string`);
      w.string(value);
      return;
    case 'bool':
      if (typeof value !== 'boolean') throw new TypeError(`${key}: expected a boolean`);
      w.u8(value ? 1 : 0);
      return;
    case 'uint64':
    case 'int64':
      if (typeof value !== 'number' && typeof value !== 'bigint') throw new TypeError(`${key}: expected a number or bigint`);
      if (type === 'uint64') w.u64(value);
      else w.i64(value);
      return;
    default: {
      if (typeof value !== 'number') throw new TypeError(`${key}: expected a number`);
      if (type !== 'float32' && type !== 'float64' && !Number.isInteger(value)) {
        throw new TypeError(`${key}: expected an integer for ${type}, got ${value}`);
      }
      w.number(type, value);
    }
  }
}

/** A growable little-endian byte buffer. */
class ByteWriter {
  private buffer = new Uint8Array(4096);
  private view = new DataView(this.buffer.buffer);
  private length = 0;
  private readonly encoder = new TextEncoder();

  u8(value: number): void {
    this.number('uint8', value);
  }

  u32(value: number): void {
    this.number('uint32', value);
  }

  u64(value: number | bigint): void {
    const big = BigInt(value);
    if (big < 0n || big > 0xffff_ffff_ffff_ffffn) throw new RangeError(`${value} does not fit a uint64`);
    this.reserve(8).setBigUint64(this.length - 8, big, true);
  }

  i64(value: number | bigint): void {
    this.reserve(8).setBigInt64(this.length - 8, BigInt(value), true);
  }

  number(type: GgufNumberType, value: number): void {
    const size = NUMBER_SIZES[type];
    const view = this.reserve(size);
    const at = this.length - size;
    checkRange(type, value);
    switch (type) {
      case 'uint8':
        view.setUint8(at, value);
        break;
      case 'int8':
        view.setInt8(at, value);
        break;
      case 'uint16':
        view.setUint16(at, value, true);
        break;
      case 'int16':
        view.setInt16(at, value, true);
        break;
      case 'uint32':
        view.setUint32(at, value, true);
        break;
      case 'int32':
        view.setInt32(at, value, true);
        break;
      case 'float32':
        view.setFloat32(at, value, true);
        break;
      case 'float64':
        view.setFloat64(at, value, true);
        break;
    }
  }

  string(value: string): void {
    const bytes = this.encoder.encode(value);
    this.u64(bytes.length);
    this.reserve(bytes.length);
    this.buffer.set(bytes, this.length - bytes.length);
  }

  bytes(): Uint8Array {
    return this.buffer.slice(0, this.length);
  }

  /** Grows the buffer for `size` more bytes, advances the length and returns the (possibly new) view. */
  private reserve(size: number): DataView {
    const needed = this.length + size;
    if (needed > this.buffer.length) {
      let capacity = this.buffer.length * 2;
      while (capacity < needed) capacity *= 2;
      const next = new Uint8Array(capacity);
      next.set(this.buffer.subarray(0, this.length));
      this.buffer = next;
      this.view = new DataView(next.buffer);
    }
    this.length = needed;
    return this.view;
  }
}

const NUMBER_SIZES: Readonly<Record<GgufNumberType, number>> = {
  uint8: 1,
  int8: 1,
  uint16: 2,
  int16: 2,
  uint32: 4,
  int32: 4,
  float32: 4,
  float64: 8,
};

const INTEGER_RANGES: Readonly<Partial<Record<GgufNumberType, readonly [number, number]>>> = {
  uint8: [0, 0xff],
  int8: [-0x80, 0x7f],
  uint16: [0, 0xffff],
  int16: [-0x8000, 0x7fff],
  uint32: [0, 0xffff_ffff],
  int32: [-0x8000_0000, 0x7fff_ffff],
};

function checkRange(type: GgufNumberType, value: number): void {
  const range = INTEGER_RANGES[type];
  if (range && (value < range[0] || value > range[1])) throw new RangeError(`${value} does not fit a ${type}`);
}

async function writeFully(handle: FileHandle, bytes: Uint8Array, position: number): Promise<void> {
  let written = 0;
  while (written < bytes.length) {
    const { bytesWritten } = await handle.write(bytes, written, bytes.length - written, position + written);
    written += bytesWritten;
  }
}
