import { describe, expect, it } from 'vitest';
import { decodeBase64Floats, encodeBase64Floats } from './embeddings.js';

// The provider's embed() end to end: openai-compatible.provider.spec.ts.
describe('OpenAI embedding encodings', () => {
  it('base64 helpers round-trip float32 values', () => {
    const values = [0, 1, -1, 0.1, 3.4e38].map(Math.fround);
    expect(decodeBase64Floats(encodeBase64Floats(values))).toEqual(values);
    expect(decodeBase64Floats('AAA=')).toBeUndefined();
  });
});
