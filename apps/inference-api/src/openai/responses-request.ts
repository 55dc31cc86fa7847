import { ApiError } from '../common/api-error.js';
import { mapError } from '../common/error-mapping.js';
import type { ChatCompletionBody, ToolCallBody } from './openai.schemas.js';
import type { ResponsesBody, ResponsesContentPart, ResponsesInputItem, ResponsesTool } from './responses.schemas.js';

type ChatMessageBody = ChatCompletionBody['messages'][number];
type ChatToolBody = NonNullable<ChatCompletionBody['tools']>[number];

/** A Responses request as the equivalent chat completion request, with what is needed to speak of it in Responses terms. */
export interface ResponsesChat {
  readonly chat: ChatCompletionBody;
  /**
   * Where each chat message came from: the index of its input item, -1 for `instructions`, -2 for
   * the stored conversation `previous_response_id` continues.
   */
  readonly sources: readonly number[];
}

/** `sources` of the messages from the stored conversation (see ResponsesChat). */
const FROM_PREVIOUS = -2;

/**
 * Fields of the Responses API that are accepted and do not change the output: tiers, prompt-cache
 * hints, stream options (obfuscation), safety ids. Not passed on.
 */
const IGNORED = new Set([
  'stream', 'stream_options', 'store', 'service_tier', 'prompt_cache_key', 'prompt_cache_retention', 'safety_identifier', 'truncation',
  // A bound on calls to built-in tools, which are not served (so never called).
  'max_tool_calls',
]);

/** Fields read by responsesChatBody. */
const READ = new Set([
  'model', 'input', 'instructions', 'max_output_tokens', 'temperature', 'top_p', 'tools', 'tool_choice', 'parallel_tool_calls', 'text',
  'metadata', 'user', 'previous_response_id', 'conversation', 'background', 'include', 'reasoning', 'prompt', 'context_management',
  'top_logprobs',
]);

/**
 * Chat completion parameters that are not Responses parameters: refused with a pointer rather than
 * interpreted (the chat route would read them) or passed on.
 */
const CHAT_ONLY: Readonly<Record<string, string>> = {
  messages: "use 'input'",
  max_tokens: "use 'max_output_tokens'",
  max_completion_tokens: "use 'max_output_tokens'",
  response_format: "use 'text.format'",
  n: 'a response has one output',
  functions: "use 'tools'",
  function_call: "use 'tool_choice'",
  logprobs: 'log probabilities are not served on /v1/responses',
  stop: 'use /v1/chat/completions for stop sequences',
  seed: 'use /v1/chat/completions for seeded sampling',
  presence_penalty: 'use /v1/chat/completions for penalties',
  frequency_penalty: 'use /v1/chat/completions for penalties',
};

function unsupported(message: string, param: string): ApiError {
  return ApiError.invalidRequest(message, param, 'unsupported_parameter');
}

/**
 * The chat completion request a Responses request asks for: `instructions` as a first system
 * message, the input items as messages (function calls joined to the assistant message before them,
 * their outputs as tool messages), `max_output_tokens` as `max_tokens`, flat function tools as chat
 * tools, `text.format` as `response_format`. Other unknown fields are passed on as chat passes its own
 * (sampling extensions such as `top_k`). What the API cannot serve is refused
 * (400 `unsupported_parameter` naming the field) rather than ignored. InferenceService.chatJob then
 * applies every check of the chat route (model, tool calling, ...).
 */
export function responsesChatBody(body: ResponsesBody, context: readonly ResponsesInputItem[] = []): ResponsesChat {
  assertServable(body);
  const messages: ChatMessageBody[] = [];
  const sources: number[] = [];
  if (body.instructions != null) {
    messages.push({ role: 'system', content: body.instructions });
    sources.push(-1);
  }
  if (context.length > 0) {
    const start = sources.length;
    // Items this server stored itself: they convert as the request's own items do.
    inputMessages(context, messages, sources);
    sources.fill(FROM_PREVIOUS, start);
  }
  if (typeof body.input === 'string') {
    messages.push({ role: 'user', content: body.input });
    sources.push(0);
  } else {
    inputMessages(body.input, messages, sources);
  }
  if (messages.length === 0) throw ApiError.invalidRequest("'input' must hold at least one item (or give 'instructions').", 'input');

  const chat: ChatCompletionBody = { model: body.model, messages };
  if (body.max_output_tokens != null) chat.max_tokens = body.max_output_tokens;
  if (body.temperature != null) chat.temperature = body.temperature;
  if (body.top_p != null) chat.top_p = body.top_p;
  if (body.tools != null && body.tools.length > 0) chat.tools = body.tools.map(chatTool);
  // `auto` and `none` without tools (what a Response echoes by default: `tool_choice: "auto", tools: []`) say nothing.
  const noTools = chat.tools === undefined;
  if (body.tool_choice != null && !(noTools && (body.tool_choice === 'auto' || body.tool_choice === 'none'))) {
    chat.tool_choice = chatToolChoice(body.tool_choice);
  }
  if (body.parallel_tool_calls != null) chat.parallel_tool_calls = body.parallel_tool_calls;
  const format = body.text?.format;
  if (format !== undefined) {
    const responseFormat = chatResponseFormat(format);
    if (responseFormat !== undefined) chat['response_format'] = responseFormat;
  }
  if (body.user !== undefined) chat.user = body.user;
  for (const key in body) {
    if (READ.has(key) || IGNORED.has(key) || body[key] === undefined) continue;
    const hint = CHAT_ONLY[key];
    if (hint !== undefined) throw ApiError.invalidRequest(`'${key}' is not a Responses API parameter: ${hint}.`, key, 'unknown_parameter');
    chat[key] = body[key];
  }
  return { chat, sources };
}

/** Refuses what a server without built-in tools or stored conversations cannot do. */
function assertServable(body: ResponsesBody): void {
  if (body.conversation != null && body.previous_response_id != null) {
    throw ApiError.invalidRequest("'previous_response_id' and 'conversation' cannot be used together: a response continues one or the other.", 'conversation');
  }
  if (body.include != null && body.include.length > 0) throw unsupported("'include' is not supported: no extra output data is served.", 'include');
  if (body.reasoning != null) throw unsupported("'reasoning' is not supported: the served models are not reasoning models.", 'reasoning');
  if (body.prompt != null) throw unsupported("'prompt' (stored prompt templates) is not supported.", 'prompt');
  const topLogprobs = body['top_logprobs'];
  if (topLogprobs != null && topLogprobs !== 0) {
    throw unsupported("'top_logprobs' is not supported on /v1/responses: use /v1/chat/completions with 'logprobs' and 'top_logprobs'.", 'top_logprobs');
  }
  if (body.truncation === 'auto') throw unsupported("'truncation: auto' is not supported: a conversation that does not fit is an error.", 'truncation');
  const management = body['context_management'];
  if (management != null && !(Array.isArray(management) && management.length === 0)) {
    throw unsupported("'context_management' is not supported.", 'context_management');
  }
}

function inputMessages(items: readonly ResponsesInputItem[], messages: ChatMessageBody[], sources: number[]): void {
  for (let i = 0; i < items.length; i++) {
    const item = items[i] as ResponsesInputItem;
    const type = item.type ?? 'message';
    if (type === 'message') {
      if (item.role === undefined) throw ApiError.invalidRequest(`input[${i}]: a message needs a 'role'.`, `input[${i}].role`);
      if (item.content === undefined) throw ApiError.invalidRequest(`input[${i}]: a message needs 'content'.`, `input[${i}].content`);
      messages.push({ role: item.role, content: contentText(item.content, `input[${i}].content`, item.role === 'assistant') });
      sources.push(i);
    } else if (type === 'function_call') {
      const call: ToolCallBody = {
        id: required(item.call_id, i, 'call_id'),
        type: 'function',
        function: { name: required(item.name, i, 'name'), arguments: required(item.arguments, i, 'arguments') },
      };
      // Calls made in one turn belong to the assistant message of that turn (OpenAI's chat form).
      const last = messages[messages.length - 1];
      if (last !== undefined && last.role === 'assistant') {
        (last.tool_calls ??= []).push(call);
      } else {
        messages.push({ role: 'assistant', content: null, tool_calls: [call] });
        sources.push(i);
      }
    } else if (type === 'function_call_output') {
      const callId = required(item.call_id, i, 'call_id');
      if (item.output === undefined) throw ApiError.invalidRequest(`input[${i}]: a function_call_output needs 'output'.`, `input[${i}].output`);
      messages.push({ role: 'tool', tool_call_id: callId, content: contentText(item.output, `input[${i}].output`) });
      sources.push(i);
    } else {
      throw ApiError.invalidRequest(
        `input[${i}]: items of type '${type}' are not supported (only messages, function_call and function_call_output).`,
        `input[${i}].type`,
        'unsupported_value',
      );
    }
  }
}

function required(value: string | undefined, index: number, field: string): string {
  if (value === undefined) throw ApiError.invalidRequest(`input[${index}]: a function call item needs '${field}'.`, `input[${index}].${field}`);
  return value;
}

/** A message's content (or a function output) as text: a string, or text parts joined (as chat joins its parts). */
function contentText(content: string | ResponsesContentPart[], param: string, assistant = false): string {
  if (typeof content === 'string') return content;
  let text = '';
  for (let j = 0; j < content.length; j++) {
    const part = content[j] as ResponsesContentPart;
    if (part.type === 'refusal' && assistant) {
      // An assistant turn's refusal (as a Response's output holds it): what it said.
      if (typeof part['refusal'] !== 'string') throw ApiError.invalidRequest("A refusal part needs 'refusal'.", `${param}[${j}].refusal`);
      text += part['refusal'];
      continue;
    }
    if (part.type !== 'input_text' && part.type !== 'output_text') {
      throw ApiError.invalidRequest(
        `Only text content parts are supported (input_text, output_text; refusal in assistant messages), not '${part.type}'.`,
        `${param}[${j}].type`,
        'unsupported_value',
      );
    }
    if (typeof part.text !== 'string') throw ApiError.invalidRequest(`A ${part.type} part needs 'text'.`, `${param}[${j}].text`);
    text += part.text;
  }
  return text;
}

function chatTool(tool: ResponsesTool, index: number): ChatToolBody {
  if (tool.type !== 'function') {
    throw unsupported(`tools[${index}]: only function tools are supported; built-in tools such as '${tool.type}' are not served.`, `tools[${index}].type`);
  }
  if (tool.name === undefined) throw ApiError.invalidRequest(`tools[${index}]: a function tool needs a 'name'.`, `tools[${index}].name`);
  const fn: ChatToolBody['function'] = { name: tool.name };
  if (tool.description != null) fn.description = tool.description;
  if (tool.parameters != null) fn.parameters = tool.parameters;
  if (tool.strict != null) fn.strict = tool.strict;
  return { type: 'function', function: fn };
}

function chatToolChoice(choice: NonNullable<ResponsesBody['tool_choice']>): NonNullable<ChatCompletionBody['tool_choice']> {
  if (typeof choice === 'string') return choice;
  if (choice.type !== 'function') throw unsupported(`'tool_choice' of type '${choice.type}' is not supported: use none, auto, required or a function.`, 'tool_choice.type');
  if (choice.name === undefined) throw ApiError.invalidRequest("'tool_choice' of type 'function' needs a 'name'.", 'tool_choice.name');
  return { type: 'function', function: { name: choice.name } };
}

/** `text.format` as chat's `response_format` (undefined for plain text, chat's default). */
function chatResponseFormat(format: NonNullable<NonNullable<ResponsesBody['text']>['format']>): Record<string, unknown> | undefined {
  if (format.type === 'text') return undefined;
  if (format.type === 'json_object') return { type: 'json_object' };
  if (format.name === undefined) throw ApiError.invalidRequest("A 'json_schema' format needs a 'name'.", 'text.format.name');
  if (format.schema === undefined) throw ApiError.invalidRequest("A 'json_schema' format needs a 'schema'.", 'text.format.schema');
  const jsonSchema: Record<string, unknown> = { name: format.name, schema: format.schema };
  if (format.description !== undefined) jsonSchema['description'] = format.description;
  if (format.strict != null) jsonSchema['strict'] = format.strict;
  return { type: 'json_schema', json_schema: jsonSchema };
}

/**
 * A chat request's parameter name in Responses terms: where the chat checks (InferenceService.chatJob)
 * or a provider name what is wrong (`messages[2]`, `tools[0].function.name`, `response_format.type`,
 * `max_tokens`), the client of /v1/responses reads the field it sent.
 */
export function responsesParam(param: string, sources: readonly number[]): string {
  if (param === 'messages' || param === 'prompt') return 'input';
  if (param === 'max_tokens' || param === 'max_completion_tokens') return 'max_output_tokens';
  if (param === 'tool_choice.function.name') return 'tool_choice.name';
  let match = /^messages\[(\d+)\]/.exec(param);
  if (match !== null) {
    const source = sources[Number(match[1])];
    if (source === undefined) return 'input';
    if (source === FROM_PREVIOUS) return 'previous_response_id';
    return source < 0 ? 'instructions' : `input[${source}]`;
  }
  match = /^tools\[(\d+)\]\.function\.(.+)$/.exec(param);
  if (match !== null) return `tools[${match[1]}].${match[2]}`;
  if (param.startsWith('response_format')) return `text.format${param.slice('response_format'.length).replace(/^\.json_schema/, '')}`;
  return param;
}

/** An error of the chat path with its `param` in Responses terms (other errors as they are). */
export function responsesError(error: unknown, sources: readonly number[]): unknown {
  const { status, body, unexpected } = mapError(error);
  const param = body.error.param;
  if (unexpected || param === null) return error;
  const renamed = responsesParam(param, sources);
  if (renamed === param) return error;
  return new ApiError(status, body.error.message, body.error.type, body.error.code, renamed);
}
