import type { ToolCall, ToolCallPart } from './model-provider.js';

/** A tool call being put together from its stream parts. */
export type ToolCallDraft = { -readonly [K in keyof ToolCall]: ToolCall[K] };

/**
 * Adds one `tool_call` stream part to `calls`, by its index: the first part of a call starts it
 * (with its id and name), later ones append argument text. What every consumer of a stream does.
 */
export function addToolCallPart(calls: ToolCallDraft[], part: ToolCallPart): void {
  const call = calls[part.index];
  if (call) call.arguments += part.arguments;
  else calls[part.index] = { id: part.id ?? '', name: part.name ?? '', arguments: part.arguments };
}
