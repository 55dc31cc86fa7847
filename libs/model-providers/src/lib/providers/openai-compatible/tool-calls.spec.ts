import { describe, expect, it } from 'vitest';
import { ModelProviderError } from '../../contract/errors.js';
import { ToolCallStream, wireMessages } from './tool-calls.js';

// The provider's tool calling end to end (fake upstream, odd upstream answers): openai-compatible.provider.spec.ts.
describe('ToolCallStream', () => {
  it('numbers calls in the order they start, whatever the upstream indexes, and generates missing ids', () => {
    const s = new ToolCallStream();
    expect(s.parts([{ index: 3, id: 'a', function: { name: 'f', arguments: '{"' } }], 'l')).toEqual([
      { type: 'tool_call', index: 0, id: 'a', name: 'f', arguments: '{"' },
    ]);
    const second = s.parts([{ index: 7, function: { name: 'g', arguments: '' } }, { index: 3, function: { arguments: 'x":1}' } }], 'l');
    expect(second).toEqual([
      { type: 'tool_call', index: 1, id: expect.stringMatching(/^call_/), name: 'g', arguments: '' },
      { type: 'tool_call', index: 0, arguments: 'x":1}' },
    ]);
    // Pieces without argument text carry nothing.
    expect(s.parts([{ index: 7, function: { arguments: '' } }], 'l')).toEqual([]);
  });

  it('rejects a call that starts without a name, and non-string arguments', () => {
    expect(() => new ToolCallStream().parts([{ index: 0, function: { arguments: '{}' } }], 'l')).toThrow(ModelProviderError);
    expect(() => new ToolCallStream().parts([{ index: 0, function: { name: 'f', arguments: 5 } }], 'l')).toThrow(ModelProviderError);
  });
});

describe('wireMessages', () => {
  it('returns the same array when no message carries tool calls', () => {
    const messages = [{ role: 'user' as const, content: 'x' }];
    expect(wireMessages(messages)).toBe(messages);
  });
});
