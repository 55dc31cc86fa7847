/**
 * Log probabilities on the OpenAI wire: `choices[0].logprobs` of a chat answer (`{content: [{token,
 * logprob, bytes, top_logprobs}]}`) or of a legacy completion (`{tokens, token_logprobs,
 * top_logprobs: [{token: logprob}]}`), whole or one stream chunk's worth, to the contract's
 * TokenLogprob[]. Only called when the request asked for logprobs and the upstream sent some: the
 * hot path of requests without them never gets here.
 *
 * Strict on shapes (a body we cannot read is the upstream's fault: malformedError), but tolerant of
 * what real servers do: `bytes` null or absent, `top_logprobs` null, llama.cpp's server answering
 * completions in the chat form. `top` is put in order (most likely first) when the upstream did not,
 * and cut to the requested number: vLLM puts the sampled token first, and the legacy completions
 * API may give one alternative more than asked (the sampled token).
 */
import type { TokenLogprob, TopLogprob } from '../../contract/model-provider.js';
import { malformedError } from './upstream-errors.js';

type JsonObject = Record<string, unknown>;

/**
 * The entries of a `choices[0].logprobs` that is not null (`where` names it in errors), in the form
 * of the route, each with at most `top` alternatives. Undefined when it holds none.
 */
export function parseLogprobs(chat: boolean, raw: unknown, top: number, label: string, where: string): TokenLogprob[] | undefined {
  return chat ? parseChatLogprobs(raw, top, label, where) : parseCompletionLogprobs(raw, top, label, where);
}

/**
 * The entries of a chat `choices[0].logprobs` (`where` names it in errors). Undefined when it holds
 * none (`content` null, absent or empty: the upstream ignored the request, or the answer is tool calls).
 */
export function parseChatLogprobs(raw: unknown, top: number, label: string, where: string): TokenLogprob[] | undefined {
  const object = asObject(raw, label, where);
  const content = object['content'];
  if (content === null || content === undefined) return undefined;
  if (!Array.isArray(content)) throw malformedError(label, `${where}.content is not an array`);
  if (content.length === 0) return undefined;
  const entries: TokenLogprob[] = [];
  for (let i = 0; i < content.length; i++) {
    const at = `${where}.content[${i}]`;
    const item = asObject(content[i], label, at);
    const alternatives = item['top_logprobs'];
    let list: TopLogprob[] = [];
    if (alternatives !== null && alternatives !== undefined) {
      if (!Array.isArray(alternatives)) throw malformedError(label, `${at}.top_logprobs is not an array`);
      list = alternatives.map((alternative: unknown, j) => {
        const where = `${at}.top_logprobs[${j}]`;
        return topEntry(asObject(alternative, label, where), label, where);
      });
    }
    entries.push({ ...topEntry(item, label, at), top: ordered(list, top) });
  }
  return entries;
}

/**
 * The entries of a legacy completion `choices[0].logprobs`: one per `tokens` item, `top` from the
 * `top_logprobs` dict of its position (null: none). Undefined when it holds none. `text_offset` is
 * not read: the entries are in order, and offsets into the text are the API layer's to compute.
 */
export function parseCompletionLogprobs(raw: unknown, top: number, label: string, where: string): TokenLogprob[] | undefined {
  const object = asObject(raw, label, where);
  const tokens = object['tokens'];
  // llama.cpp's server answers /completions with the chat form.
  if (tokens === undefined && object['content'] !== undefined) return parseChatLogprobs(object, top, label, where);
  if (tokens === null || tokens === undefined) return undefined;
  if (!Array.isArray(tokens)) throw malformedError(label, `${where}.tokens is not an array`);
  const values = object['token_logprobs'];
  if (!Array.isArray(values) || values.length !== tokens.length) {
    throw malformedError(label, `${where}.token_logprobs is not an array as long as ${where}.tokens`);
  }
  const dicts = object['top_logprobs'];
  if (dicts !== null && dicts !== undefined && (!Array.isArray(dicts) || dicts.length !== tokens.length)) {
    throw malformedError(label, `${where}.top_logprobs is neither null nor an array as long as ${where}.tokens`);
  }
  if (tokens.length === 0) return undefined;
  const entries: TokenLogprob[] = [];
  for (let i = 0; i < tokens.length; i++) {
    const token: unknown = tokens[i];
    if (typeof token !== 'string') throw malformedError(label, `${where}.tokens[${i}] is not a string`);
    const logprob = logprobOf(values[i], label, `${where}.token_logprobs[${i}]`);
    const dict: unknown = Array.isArray(dicts) ? dicts[i] : null;
    entries.push({ token, logprob, top: ordered(dictEntries(dict, label, `${where}.top_logprobs[${i}]`), top) });
  }
  return entries;
}

function asObject(value: unknown, label: string, where: string): JsonObject {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) throw malformedError(label, `${where} is not an object`);
  return value as JsonObject;
}

/** `{token, logprob, bytes}` of a chat entry or of one of its alternatives. */
function topEntry(item: JsonObject, label: string, where: string): TopLogprob {
  const token = item['token'];
  if (typeof token !== 'string') throw malformedError(label, `${where}.token is not a string`);
  const logprob = logprobOf(item['logprob'], label, `${where}.logprob`);
  const bytes = item['bytes'];
  if (bytes === null || bytes === undefined) return { token, logprob };
  if (!Array.isArray(bytes) || !bytes.every(isByte)) throw malformedError(label, `${where}.bytes is not an array of bytes`);
  return { token, logprob, bytes: bytes as number[] };
}

function logprobOf(value: unknown, label: string, where: string): number | null {
  if (value === null) return null;
  if (typeof value !== 'number' || !Number.isFinite(value)) throw malformedError(label, `${where} is not a finite number or null`);
  return value;
}

function isByte(value: unknown): boolean {
  return typeof value === 'number' && Number.isInteger(value) && value >= 0 && value <= 255;
}

/** A legacy `{token: logprob}` dict (null: none) as entries, in the dict's order. */
function dictEntries(dict: unknown, label: string, where: string): TopLogprob[] {
  if (dict === null || dict === undefined) return [];
  const object = asObject(dict, label, where);
  const list: TopLogprob[] = [];
  for (const token of Object.keys(object)) list.push({ token, logprob: logprobOf(object[token], label, `${where}[${JSON.stringify(token)}]`) });
  return list;
}

/** Null (no probability) sorts after every number. */
const rank = (entry: TopLogprob): number => entry.logprob ?? -Infinity;

/** `list` most likely first (sorted only when it is not already, stably), at most `top` entries. */
function ordered(list: TopLogprob[], top: number): TopLogprob[] {
  for (let i = 1; i < list.length; i++) {
    if (rank(list[i] as TopLogprob) > rank(list[i - 1] as TopLogprob)) {
      list.sort((a, b) => rank(b) - rank(a) || 0);
      break;
    }
  }
  if (list.length > top) list.length = top;
  return list;
}
