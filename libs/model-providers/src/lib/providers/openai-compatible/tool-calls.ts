/**
 * Tool (function) calling on the OpenAI wire: the contract's camelCase shapes to OpenAI's request
 * fields, and OpenAI's `tool_calls` (whole in a JSON body, in pieces in a stream) back to the
 * contract. Lenient on what upstreams send, as gateways must be: a missing call id is generated,
 * object `arguments` (some servers) are serialised, the legacy `function_call` is read as one call.
 */
import { randomBytes } from 'node:crypto';
import type { ChatMessage, ToolCall, ToolCallPart, ToolChoice, ToolDefinition } from '../../contract/model-provider.js';
import { malformedError } from './upstream-errors.js';

type JsonObject = Record<string, unknown>;

/** The messages as OpenAI wants them: the same array when no message carries tool calls (the common case). */
export function wireMessages(messages: readonly ChatMessage[]): readonly unknown[] {
  let plain = true;
  for (const m of messages) {
    if (m.toolCalls !== undefined || m.toolCallId !== undefined) {
      plain = false;
      break;
    }
  }
  if (plain) return messages;
  return messages.map((m) => {
    const out: JsonObject = { role: m.role, content: m.content };
    if (m.name !== undefined) out['name'] = m.name;
    if (m.toolCalls !== undefined && m.toolCalls.length > 0) {
      // OpenAI's own form of an assistant turn that only called tools.
      if (m.content === '') out['content'] = null;
      out['tool_calls'] = m.toolCalls.map((call) => ({ id: call.id, type: 'function', function: { name: call.name, arguments: call.arguments } }));
    }
    if (m.toolCallId !== undefined) out['tool_call_id'] = m.toolCallId;
    return out;
  });
}

export function wireTools(tools: readonly ToolDefinition[]): unknown[] {
  return tools.map((tool) => {
    const fn: JsonObject = { name: tool.name };
    if (tool.description !== undefined) fn['description'] = tool.description;
    if (tool.parameters !== undefined) fn['parameters'] = tool.parameters;
    if (tool.strict !== undefined) fn['strict'] = tool.strict;
    return { type: 'function', function: fn };
  });
}

export function wireToolChoice(choice: ToolChoice): unknown {
  return typeof choice === 'string' ? choice : { type: 'function', function: { name: choice.name } };
}

/** A call id for upstreams that send none: OpenAI's form, `call_` and 24 random characters. */
export function generatedCallId(): string {
  return `call_${randomBytes(18).toString('base64url')}`;
}

function argumentsText(value: unknown): string | undefined {
  if (typeof value === 'string') return value;
  if (value === undefined || value === null) return '';
  if (typeof value === 'object') return JSON.stringify(value);
  return undefined;
}

/**
 * The tool calls of a non-stream `choices[0].message` (`tool_calls`, or the legacy `function_call`).
 * Undefined when there are none; throws a malformed-response error for calls without a name.
 */
export function parseToolCalls(message: JsonObject | undefined, label: string): ToolCall[] | undefined {
  if (!message) return undefined;
  const raw = message['tool_calls'];
  if (Array.isArray(raw) && raw.length > 0) {
    return raw.map((item: unknown, i) => {
      const call = item !== null && typeof item === 'object' ? (item as JsonObject) : {};
      const fn = call['function'] !== null && typeof call['function'] === 'object' ? (call['function'] as JsonObject) : {};
      const name = fn['name'];
      const args = argumentsText(fn['arguments']);
      if (typeof name !== 'string' || name.length === 0 || args === undefined) {
        throw malformedError(label, `choices[0].message.tool_calls[${i}] has no function name or arguments`);
      }
      const id = call['id'];
      return { id: typeof id === 'string' && id.length > 0 ? id : generatedCallId(), name, arguments: args };
    });
  }
  const legacy = message['function_call'];
  if (legacy !== null && typeof legacy === 'object') {
    const fn = legacy as JsonObject;
    const name = fn['name'];
    const args = argumentsText(fn['arguments']);
    if (typeof name !== 'string' || name.length === 0 || args === undefined) {
      throw malformedError(label, 'choices[0].message.function_call has no name or arguments');
    }
    return [{ id: generatedCallId(), name, arguments: args }];
  }
  return undefined;
}

/**
 * Turns the `delta.tool_calls` pieces of a stream into ToolCallParts: the first piece of each call
 * gets its id (generated if the upstream sent none) and name; later pieces carry argument text.
 * Calls are numbered 0, 1, ... in the order they start, whatever indexes the upstream used.
 */
export class ToolCallStream {
  /** Upstream index -> our index. */
  private readonly indexes = new Map<number, number>();

  /** The parts of one `delta.tool_calls` array (may be empty). */
  parts(raw: unknown, label: string): ToolCallPart[] {
    if (!Array.isArray(raw)) return [];
    const parts: ToolCallPart[] = [];
    for (let i = 0; i < raw.length; i++) {
      const item: unknown = raw[i];
      if (item === null || typeof item !== 'object') throw malformedError(label, 'a stream event has a tool call that is not an object');
      const call = item as JsonObject;
      const fn = call['function'] !== null && typeof call['function'] === 'object' ? (call['function'] as JsonObject) : {};
      const upstreamIndex = typeof call['index'] === 'number' ? call['index'] : i;
      const args = argumentsText(fn['arguments']);
      if (args === undefined) throw malformedError(label, 'a stream event has tool call arguments that are not a string');
      const name = fn['name'];
      let index = this.indexes.get(upstreamIndex);
      if (index === undefined) {
        if (typeof name !== 'string' || name.length === 0) {
          throw malformedError(label, 'a stream event starts a tool call without a function name');
        }
        index = this.indexes.size;
        this.indexes.set(upstreamIndex, index);
        const id = call['id'];
        parts.push({ type: 'tool_call', index, id: typeof id === 'string' && id.length > 0 ? id : generatedCallId(), name, arguments: args });
      } else if (args.length > 0) {
        parts.push({ type: 'tool_call', index, arguments: args });
      }
    }
    return parts;
  }
}
