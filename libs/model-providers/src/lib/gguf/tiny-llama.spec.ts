import { execFile } from 'node:child_process';
import { mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import type { Llama } from 'node-llama-cpp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { encodeGguf, layoutGguf } from './gguf-writer.js';
import {
  buildTinyLlamaGguf,
  DEFAULT_TINY_LLAMA_SPEC,
  ensureTinyLlamaGguf,
  LARGE_TINY_LLAMA_SPEC,
  resolveTinyLlamaSpec,
  TINY_LLAMA_GGUF_FILE_NAME,
  tinyLlamaGgufFileName,
  writeTinyLlamaGguf,
} from './tiny-llama.js';

const here = dirname(fileURLToPath(import.meta.url));
const libRoot = resolve(here, '../../..');

describe('tiny llama GGUF', () => {
  let dir: string;
  let llama: Llama;

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'tiny-llama-'));
    const { getLlama, LlamaLogLevel } = await import('node-llama-cpp');
    llama = await getLlama({ gpu: false, build: 'never', logLevel: LlamaLogLevel.error });
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('names files after their spec', () => {
    expect(TINY_LLAMA_GGUF_FILE_NAME).toMatch(/^tiny-llama-64x2-f32-[0-9a-f]{8}\.gguf$/);
    expect(tinyLlamaGgufFileName()).toBe(TINY_LLAMA_GGUF_FILE_NAME);
    expect(tinyLlamaGgufFileName({ seed: 1 })).not.toBe(TINY_LLAMA_GGUF_FILE_NAME);
    expect(tinyLlamaGgufFileName(LARGE_TINY_LLAMA_SPEC)).toMatch(/^tiny-llama-512x8-f16-/);
    expect(() => resolveTinyLlamaSpec({ headCount: 3 })).toThrow(/multiple of headCount/);
  });

  it('loads in node-llama-cpp with the metadata, vocabulary and chat template it was written with', async () => {
    const path = join(dir, TINY_LLAMA_GGUF_FILE_NAME);
    const started = performance.now();
    const info = await writeTinyLlamaGguf(path);
    const writeMs = performance.now() - started;
    expect(info.size).toBe((await stat(path)).size);
    expect(writeMs).toBeLessThan(2_000);

    const loadStarted = performance.now();
    const model = await llama.loadModel({ modelPath: path });
    const loadMs = performance.now() - loadStarted;
    try {
      expect(loadMs).toBeLessThan(1_000);
      expect(model.trainContextSize).toBe(DEFAULT_TINY_LLAMA_SPEC.contextLength);
      expect(model.tokens.bos).toBe(1);
      expect(model.tokens.eos).toBe(2);
      expect(model.tokens.shouldPrependBosToken).toBe(true);
      const metadata = model.fileInfo.metadata as unknown as Record<string, Record<string, unknown>>;
      expect(metadata['general']).toMatchObject({ architecture: 'llama', name: 'tiny-llama', alignment: 32 });
      expect(metadata['llama']).toMatchObject({ embedding_length: 64, block_count: 2, context_length: 2048 });

      // Byte-level vocabulary: one token per byte, and text (spaces, UTF-8) round-trips.
      const text = 'Hello,  wörld! 🙂\n';
      const tokens = model.tokenize(text, false, 'trimLeadingSpace');
      expect(tokens.length).toBe(Buffer.byteLength(text));
      expect(model.detokenize(tokens)).toBe(text);

      const { resolveChatWrapper, LlamaCompletion } = await import('node-llama-cpp');
      const wrapper = resolveChatWrapper(model);
      expect(wrapper.wrapperName).toBe('JinjaTemplate');
      const { contextText, stopGenerationTriggers } = wrapper.generateContextState({
        chatHistory: [
          { type: 'system', text: 'S' },
          { type: 'user', text: 'U' },
          { type: 'model', response: [] },
        ],
      });
      expect(model.detokenize(contextText.tokenize(model.tokenizer), true)).toContain('<|user|>\nU</s>');
      expect(stopGenerationTriggers.length).toBeGreaterThan(0);

      // The noise is printable ASCII, and greedy decoding is reproducible.
      const context = await model.createContext({ contextSize: 512, threads: 1 });
      try {
        const completion = new LlamaCompletion({ contextSequence: context.getSequence() });
        const first = await completion.generateCompletionWithMeta('Once upon a time', { maxTokens: 200, temperature: 0 });
        expect(first.metadata.stopReason).toBe('maxTokens');
        expect(first.response).toMatch(/^[\x20-\x7e]{200}$/);
        await completion.generateCompletionWithMeta('x', { maxTokens: 1, temperature: 0 });
        const again = await completion.generateCompletionWithMeta('Once upon a time', { maxTokens: 200, temperature: 0 });
        expect(again.response).toBe(first.response);
        const sampled = await completion.generateCompletionWithMeta('Hi', { maxTokens: 300, temperature: 1, seed: 3 });
        expect(sampled.response).toMatch(/^[\x20-\x7e]*$/);
      } finally {
        await context.dispose();
      }
    } finally {
      await model.dispose();
    }
  });

  it.each([
    ['F16', { tensorType: 'F16' as const }],
    ['Q8_0 with grouped-query attention', { tensorType: 'Q8_0' as const, headCountKv: 2 }],
  ])('also loads as %s and generates', async (_, spec) => {
    const path = join(dir, tinyLlamaGgufFileName(spec));
    await writeTinyLlamaGguf(path, spec);
    const model = await llama.loadModel({ modelPath: path });
    try {
      const context = await model.createContext({ contextSize: 256, threads: 1 });
      const { LlamaCompletion } = await import('node-llama-cpp');
      const completion = new LlamaCompletion({ contextSequence: context.getSequence() });
      const result = await completion.generateCompletionWithMeta('abc', { maxTokens: 20, temperature: 0 });
      expect(result.response).toMatch(/^[\x20-\x7e]{20}$/);
      await context.dispose();
    } finally {
      await model.dispose();
    }
  });

  it('ensureTinyLlamaGguf writes once, and rewrites a file of the wrong size', async () => {
    const path = join(dir, 'ensure', 'model.gguf');
    expect(await ensureTinyLlamaGguf(path)).toBe(path);
    const first = await stat(path);
    await ensureTinyLlamaGguf(path);
    expect((await stat(path)).mtimeMs).toBe(first.mtimeMs);

    await writeFile(path, 'truncated');
    await ensureTinyLlamaGguf(path);
    expect(Buffer.compare(await readFile(path), encodeGguf(buildTinyLlamaGguf()))).toBe(0);
    expect((await readdir(join(dir, 'ensure'))).filter((name) => name.endsWith('.tmp'))).toEqual([]);
  });

  it('ensureTinyLlamaGguf is safe when several processes create the same file at once', async () => {
    const spec = { embeddingLength: 256, blockCount: 4, headCount: 4, headCountKv: 4, feedForwardLength: 512 };
    const path = join(dir, 'race', tinyLlamaGgufFileName(spec));
    const script = join(dir, 'ensure-child.ts');
    await writeFile(
      script,
      `import { ensureTinyLlamaGguf } from ${JSON.stringify(join(here, 'tiny-llama.ts'))};\n` +
        `const [path, spec, startAt] = process.argv.slice(2);\n` +
        `while (Date.now() < Number(startAt)) await new Promise((r) => setTimeout(r, 5));\n` +
        `await ensureTinyLlamaGguf(path, JSON.parse(spec));\n`,
    );
    const startAt = Date.now() + 4_000; // all children loaded and waiting by then
    const children = Array.from({ length: 3 }, () =>
      promisify(execFile)(join(libRoot, '../../node_modules/.bin/vite-node'), [script, path, JSON.stringify(spec), String(startAt)], {
        cwd: libRoot,
      }),
    );
    // A reader polling meanwhile must never see a partial file.
    const expectedSize = layoutGguf(buildTinyLlamaGguf(spec)).totalSize;
    const sizes = new Set<number>();
    let done = false;
    const all = Promise.all(children).finally(() => {
      done = true;
    });
    while (!done) {
      const size = await stat(path).then(
        (s) => s.size,
        () => -1,
      );
      if (size >= 0) sizes.add(size);
      await new Promise((r) => setTimeout(r, 2));
    }
    await all;
    expect([...sizes].every((size) => size === expectedSize)).toBe(true);
    expect(Buffer.compare(await readFile(path), encodeGguf(buildTinyLlamaGguf(spec)))).toBe(0);
    expect((await readdir(dirname(path))).filter((name) => name.endsWith('.tmp'))).toEqual([]);
  }, 60_000);
});
