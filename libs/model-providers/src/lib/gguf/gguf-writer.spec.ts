import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  encodeGguf,
  encodeTensorData,
  float16BitsToFloat32,
  float32ToFloat16Bits,
  GGUF_MAGIC,
  gguf,
  layoutGguf,
  writeGgufFile,
  type GgufFile,
} from './gguf-writer.js';
import { buildTinyLlamaGguf, mulberry32 } from './tiny-llama.js';

/** A minimal reader of what the writer produces, independent of its code paths. */
function readHeader(bytes: Uint8Array) {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let at = 0;
  const u32 = () => {
    const value = view.getUint32(at, true);
    at += 4;
    return value;
  };
  const u64 = () => {
    const value = Number(view.getBigUint64(at, true));
    at += 8;
    return value;
  };
  const str = () => {
    const length = u64();
    const text = new TextDecoder().decode(bytes.subarray(at, at + length));
    at += length;
    return text;
  };
  const scalar = (type: number): unknown => {
    switch (type) {
      case 0:
        return view.getUint8(at++);
      case 1:
        return view.getInt8(at++);
      case 4:
        return u32();
      case 5: {
        const value = view.getInt32(at, true);
        at += 4;
        return value;
      }
      case 6: {
        const value = view.getFloat32(at, true);
        at += 4;
        return value;
      }
      case 7:
        return view.getUint8(at++) === 1;
      case 8:
        return str();
      case 10:
        return view.getBigUint64((at += 8) - 8, true);
      case 11:
        return view.getBigInt64((at += 8) - 8, true);
      case 12: {
        const value = view.getFloat64(at, true);
        at += 8;
        return value;
      }
      default:
        throw new Error(`type ${type} not handled by the test reader`);
    }
  };
  const magic = u32();
  const version = u32();
  const tensorCount = u64();
  const kvCount = u64();
  const metadata: Record<string, unknown> = {};
  for (let i = 0; i < kvCount; i++) {
    const key = str();
    const type = u32();
    if (type === 9) {
      const itemType = u32();
      const count = u64();
      metadata[key] = Array.from({ length: count }, () => scalar(itemType));
    } else {
      metadata[key] = scalar(type);
    }
  }
  const tensors = Array.from({ length: tensorCount }, () => {
    const name = str();
    const dims = Array.from({ length: u32() }, () => u64());
    const type = u32();
    const offset = u64();
    return { name, dims, type, offset };
  });
  return { magic, version, tensorCount, kvCount, metadata, tensors, headerEnd: at };
}

const small: GgufFile = {
  metadata: {
    'general.architecture': gguf.string('test'),
    'test.u8': gguf.uint8(255),
    'test.i8': gguf.int8(-128),
    'test.u32': gguf.uint32(4_000_000_000),
    'test.i32': gguf.int32(-5),
    'test.f32': gguf.float32(0.5),
    'test.f64': gguf.float64(Math.PI),
    'test.u64': gguf.uint64(2n ** 40n),
    'test.i64': gguf.int64(-7),
    'test.bool': gguf.bool(true),
    'test.unicode': gguf.string('▁ héllo'),
    'test.strings': gguf.strings(['a', '', '<0x0A>']),
    'test.floats': gguf.float32s([1, -2.5]),
    'test.ints': gguf.int32s([1, -2, 3]),
  },
  tensors: [
    { name: 'a', dims: [3], type: 'F32', data: new Float32Array([1, 2, 3]) },
    { name: 'b', dims: [2, 2], type: 'F16', data: () => new Float32Array([1, -1, 0.5, 65504]) },
    { name: 'c', dims: [32, 2], type: 'Q8_0', data: Float32Array.from({ length: 64 }, (_, i) => i - 32) },
  ],
};

describe('GGUF writer', () => {
  it('writes a GGUF v3 header, then the metadata and tensor infos in order', () => {
    const bytes = encodeGguf(small);
    expect([...bytes.subarray(0, 4)]).toEqual([0x47, 0x47, 0x55, 0x46]); // "GGUF"
    const header = readHeader(bytes);
    expect(header.magic).toBe(GGUF_MAGIC);
    expect(header.version).toBe(3);
    expect(header.tensorCount).toBe(3);
    expect(header.kvCount).toBe(Object.keys(small.metadata).length + 1); // + general.alignment
    expect(Object.keys(header.metadata)[0]).toBe('general.alignment');
    expect(header.metadata).toMatchObject({
      'general.alignment': 32,
      'general.architecture': 'test',
      'test.u8': 255,
      'test.i8': -128,
      'test.u32': 4_000_000_000,
      'test.i32': -5,
      'test.f32': 0.5,
      'test.f64': Math.PI,
      'test.u64': 2n ** 40n,
      'test.i64': -7n,
      'test.bool': true,
      'test.unicode': '▁ héllo',
      'test.strings': ['a', '', '<0x0A>'],
      'test.floats': [1, -2.5],
      'test.ints': [1, -2, 3],
    });
    expect(header.tensors).toEqual([
      { name: 'a', dims: [3], type: 0, offset: 0 },
      { name: 'b', dims: [2, 2], type: 1, offset: 32 },
      { name: 'c', dims: [32, 2], type: 8, offset: 64 },
    ]);
  });

  it('aligns the data section and every tensor to 32 bytes (or the alignment asked for)', () => {
    for (const alignment of [32, 64]) {
      const file = { ...small, alignment };
      const layout = layoutGguf(file);
      const bytes = encodeGguf(file);
      const header = readHeader(bytes);
      expect(header.metadata['general.alignment']).toBe(alignment);
      expect(layout.dataOffset % alignment).toBe(0);
      expect(layout.dataOffset).toBeGreaterThanOrEqual(header.headerEnd);
      expect(layout.dataOffset - header.headerEnd).toBeLessThan(alignment);
      for (const tensor of header.tensors) expect(tensor.offset % alignment).toBe(0);
      expect(bytes.length).toBe(layout.totalSize);
      expect(bytes.length % alignment).toBe(0);
      // Padding is zeros.
      expect(bytes.subarray(header.headerEnd, layout.dataOffset).every((b) => b === 0)).toBe(true);
    }
  });

  it('places each tensor’s encoded data at its offset', () => {
    const bytes = encodeGguf(small);
    const { dataOffset } = layoutGguf(small);
    const view = new DataView(bytes.buffer);
    expect([0, 1, 2].map((i) => view.getFloat32(dataOffset + i * 4, true))).toEqual([1, 2, 3]);
    expect([0, 1, 2, 3].map((i) => view.getUint16(dataOffset + 32 + i * 2, true))).toEqual([0x3c00, 0xbc00, 0x3800, 0x7bff]);
    // Q8_0: per block of 32, an f16 scale (max |x| / 127) then 32 int8.
    const q = dataOffset + 64;
    expect(float16BitsToFloat32(view.getUint16(q, true))).toBeCloseTo(32 / 127, 3);
    expect(view.getInt8(q + 2)).toBe(-127); // -32
    expect(view.getInt8(q + 2 + 31)).toBe(-4); // -1 → round(-1 * 127 / 32)
    expect(float16BitsToFloat32(view.getUint16(q + 34, true))).toBeCloseTo(31 / 127, 3);
    expect(view.getInt8(q + 34 + 2)).toBe(0); // 0
    expect(view.getInt8(q + 34 + 2 + 31)).toBe(127); // 31
    expect(bytes.length - q).toBeGreaterThanOrEqual(2 * 34);
  });

  it('streams to a file byte-for-byte like the in-memory encoder', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'gguf-writer-'));
    try {
      const path = join(dir, 'small.gguf');
      const { size } = await writeGgufFile(path, small);
      const written = new Uint8Array(await readFile(path));
      expect(size).toBe(written.length);
      expect(Buffer.compare(written, encodeGguf(small))).toBe(0);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('is deterministic: the same seed gives the same bytes, another seed other weights', () => {
    const a = encodeGguf(buildTinyLlamaGguf({ seed: 7 }));
    const b = encodeGguf(buildTinyLlamaGguf({ seed: 7 }));
    const c = encodeGguf(buildTinyLlamaGguf({ seed: 8 }));
    expect(Buffer.compare(a, b)).toBe(0);
    expect(a.length).toBe(c.length);
    expect(Buffer.compare(a, c)).not.toBe(0);
    // Same header (the seed is not in the metadata), different data.
    const { dataOffset } = layoutGguf(buildTinyLlamaGguf({ seed: 7 }));
    expect(Buffer.compare(a.subarray(0, dataOffset), c.subarray(0, dataOffset))).toBe(0);
  });

  it('rejects what llama.cpp could not read', () => {
    const tensor = { name: 't', dims: [2], type: 'F32', data: new Float32Array(2) } as const;
    expect(() => encodeGguf({ metadata: {}, tensors: [tensor, tensor] })).toThrow(/Duplicate tensor/);
    expect(() => encodeGguf({ metadata: {}, tensors: [{ ...tensor, data: new Float32Array(3) }] })).toThrow(/3 values/);
    expect(() => encodeGguf({ metadata: {}, tensors: [{ ...tensor, dims: [0] }] })).toThrow(/invalid dimension/);
    expect(() => encodeGguf({ metadata: {}, tensors: [{ ...tensor, type: 'Q8_0' }] })).toThrow(/Q8_0/);
    expect(() => encodeGguf({ metadata: { x: gguf.uint8(256) }, tensors: [] })).toThrow(/does not fit a uint8/);
    expect(() => encodeGguf({ metadata: { x: gguf.int32(1.5) }, tensors: [] })).toThrow(/integer/);
    expect(() => encodeGguf({ metadata: {}, tensors: [], alignment: 12 })).toThrow(/multiple of 8/);
  });
});

describe('float32ToFloat16Bits', () => {
  it('encodes exact values, the extremes and the special values', () => {
    const cases: Array<[number, number]> = [
      [0, 0x0000],
      [-0, 0x8000],
      [1, 0x3c00],
      [-2, 0xc000],
      [0.5, 0x3800],
      [65504, 0x7bff], // largest finite half
      [65520, 0x7c00], // rounds up to infinity
      [1e6, 0x7c00],
      [-Infinity, 0xfc00],
      [2 ** -14, 0x0400], // smallest normal
      [2 ** -24, 0x0001], // smallest subnormal
      [2 ** -26, 0x0000], // underflow
      [1 + 2 ** -11, 0x3c00], // tie → even
      [1 + 3 * 2 ** -11, 0x3c02], // tie → even (up)
    ];
    for (const [value, bits] of cases) expect(float32ToFloat16Bits(value), String(value)).toBe(bits);
    expect(float32ToFloat16Bits(NaN) & 0x7c00).toBe(0x7c00);
    expect(float32ToFloat16Bits(NaN) & 0x3ff).not.toBe(0);
  });

  it('round-trips random values within half precision', () => {
    const next = mulberry32(1);
    for (let i = 0; i < 10_000; i++) {
      const value = (next() * 2 - 1) * 1000;
      const back = float16BitsToFloat32(float32ToFloat16Bits(value));
      expect(Math.abs(back - value)).toBeLessThanOrEqual(Math.abs(value) * 2 ** -11 + 2 ** -25);
    }
  });

  it('encodes F16 tensors with it', () => {
    const data = encodeTensorData({ name: 'x', dims: [2], type: 'F16', data: new Float32Array([1, -0.5]) });
    expect([...data]).toEqual([0x00, 0x3c, 0x00, 0xb8]);
  });
});

describe('GGUF writer cross-checked by node-llama-cpp’s GGUF parser', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'gguf-writer-'));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('reads back the metadata and tensor infos', async () => {
    const path = join(dir, 'small.gguf');
    await writeGgufFile(path, small);
    const { readGgufFileInfo } = await import('node-llama-cpp');
    const info = await readGgufFileInfo(path, { logWarnings: false });
    expect(info.version).toBe(3);
    expect(info.tensorCount).toBe(3);
    const metadata = info.metadata as unknown as Record<string, Record<string, unknown>>;
    expect(metadata['general']).toMatchObject({ architecture: 'test', alignment: 32 });
    expect(metadata['test']).toMatchObject({ u8: 255, i32: -5, bool: true, unicode: '▁ héllo', strings: ['a', '', '<0x0A>'] });
    expect(info.fullTensorInfo?.map((t) => [t.name, t.dimensions.map(Number), t.ggmlType, Number(t.offset)])).toEqual([
      ['a', [3], 0, 0],
      ['b', [2, 2], 1, 32],
      ['c', [32, 2], 8, 64],
    ]);
  });
});
