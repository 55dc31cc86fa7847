import type { FakeUpstream } from '@infer/model-providers/testing';
import type OpenAI from 'openai';
import { expect } from 'vitest';

/** An OpenAI error body, as the SDK exposes it (`error.error`). */
export type ErrorBody = { message: string; type: string; param: string | null; code: string | null };

/** A chat message as the upstream received it. */
export type ChatMessage = { role: string; content?: unknown; tool_calls?: unknown[]; tool_call_id?: string };

/** The OpenAI error body of a call that must fail with this SDK error class. */
export async function apiError(promise: Promise<unknown>, kind: abstract new (...args: never[]) => InstanceType<typeof OpenAI.APIError>): Promise<ErrorBody> {
  const error = await promise.catch((e: unknown) => e);
  expect(error).toBeInstanceOf(kind);
  return (error as InstanceType<typeof OpenAI.APIError>).error as ErrorBody;
}

/** The messages of the last chat completion the fake upstream received. */
export function lastChatMessages(upstream: FakeUpstream): ChatMessage[] {
  const last = upstream.requests.filter((r) => r.path.endsWith('/chat/completions')).at(-1);
  if (last === undefined) throw new Error('the upstream received no chat completion');
  return (last.body as { messages: ChatMessage[] }).messages;
}
