/**
 * JSON Schemas of POST /v1/responses (OpenAI's Responses API, the text and function-calling
 * subset): the request schema is compiled by Fastify for validation, and both are published as OpenAPI
 * components (openApiComponents in openai.schemas.ts). The same subset as the other schemas: OpenAPI
 * 3.0 `nullable`, `example`, no `type` arrays. What JSON Schema cannot say without conditionals (the
 * fields each input item type needs, function tools' `name`) is checked by responses-request.ts, which
 * also names the field in its 400s.
 */
import { toolsOf } from './tools-schema.js';

/** A content part of an input message: text only. */
const inputContentPart = {
  type: 'object',
  required: ['type'],
  properties: {
    type: { type: 'string', description: '`input_text` or `output_text` (assistant turns). Other parts (`input_image`, `input_file`, ...) are refused (400).' },
    text: { type: 'string' },
  },
} as const;

const textContent = {
  oneOf: [{ type: 'string' }, { type: 'array', items: inputContentPart }],
} as const;

/**
 * One input item. The three supported item types share one object schema (their fields do not
 * overlap in meaning): a message (`type` absent or `message`), a `function_call` the model made
 * earlier, and the `function_call_output` answering it.
 */
const inputItem = {
  type: 'object',
  description:
    'A message `{"type":"message","role":…,"content":…}` (`type` may be left out; `content` a string or `input_text`/`output_text` parts), ' +
    'a `{"type":"function_call","call_id","name","arguments"}` the model made earlier, or a `{"type":"function_call_output","call_id","output"}` ' +
    'answering it. Other item types (reasoning, item references, built-in tool calls) are refused (400).',
  properties: {
    type: { type: 'string', example: 'message' },
    role: { type: 'string', enum: ['user', 'assistant', 'system', 'developer'] },
    content: textContent,
    call_id: { type: 'string', minLength: 1 },
    name: { type: 'string', minLength: 1 },
    arguments: { type: 'string', description: 'The arguments as JSON text.' },
    output: { ...textContent, description: 'The function\'s result: a string, or `input_text` parts.' },
  },
} as const;

/** A tool: Responses' flat function form. Built-in tool types are refused (400). */
const tool = {
  type: 'object',
  required: ['type'],
  properties: {
    type: { type: 'string', example: 'function', description: 'Only `function`: built-in tools (web_search, file_search, ...) are refused (400).' },
    name: { type: 'string', pattern: '^[a-zA-Z0-9_-]{1,64}$' },
    description: { type: 'string', nullable: true },
    parameters: { type: 'object', nullable: true, description: 'JSON Schema of the arguments object.' },
    strict: { type: 'boolean', nullable: true },
  },
} as const;

const toolChoice = {
  description: '`none`, `auto` (the default with tools), `required`, or `{"type":"function","name":…}` to force one function.',
  oneOf: [
    { type: 'string', enum: ['none', 'auto', 'required'] },
    { type: 'object', required: ['type'], properties: { type: { type: 'string', example: 'function' }, name: { type: 'string' } } },
  ],
} as const;

const textFormat = {
  type: 'object',
  required: ['type'],
  description:
    '`{"type":"text"}` (the default), `{"type":"json_object"}`, or `{"type":"json_schema","name":…,"schema":{…},"strict":…}`: the chat ' +
    '`response_format` equivalent (the llama-cpp provider enforces it while sampling; `openai-compatible` passes it on).',
  properties: {
    type: { type: 'string', enum: ['text', 'json_object', 'json_schema'] },
    name: { type: 'string', pattern: '^[a-zA-Z0-9_-]{1,64}$' },
    description: { type: 'string' },
    schema: { type: 'object' },
    strict: { type: 'boolean', nullable: true },
  },
} as const;

const unsupported = (what: string) => `Not supported: ${what} (400 \`unsupported_parameter\`).`;

export const responsesRequestSchema = {
  type: 'object',
  required: ['model', 'input'],
  properties: {
    model: { type: 'string', minLength: 1, example: 'tiny-llama', description: 'A model id from GET /v1/models.' },
    input: {
      description: 'A text (one user message), or the conversation as input items.',
      oneOf: [{ type: 'string' }, { type: 'array', items: inputItem }],
    },
    instructions: { type: 'string', nullable: true, description: 'A system message put before the input.' },
    max_output_tokens: { type: 'integer', minimum: 1, nullable: true, example: 32, description: 'Upper bound on generated tokens (chat `max_tokens`).' },
    temperature: { type: 'number', minimum: 0, maximum: 2, nullable: true, example: 0, description: 'Sampling temperature; 0 is greedy and reproducible (and cacheable).' },
    top_p: { type: 'number', minimum: 0, maximum: 1, nullable: true },
    stream: {
      type: 'boolean',
      nullable: true,
      description: 'Stream the response as server-sent events in the Responses form: `event: <type>` and `data: <event>` (with `sequence_number`); no `[DONE]`.',
    },
    stream_options: { type: 'object', nullable: true, description: 'Accepted and ignored.' },
    tools: toolsOf(tool),
    tool_choice: toolChoice,
    parallel_tool_calls: { type: 'boolean', nullable: true, description: 'false: at most one function call per response.' },
    text: { type: 'object', properties: { format: textFormat }, description: 'Output format (`text.format`); `verbosity` is accepted and ignored.' },
    metadata: {
      type: 'object',
      nullable: true,
      maxProperties: 16,
      additionalProperties: { type: 'string', maxLength: 512 },
      description: 'Up to 16 string pairs, echoed back in the response (not sent to the model).',
    },
    user: { type: 'string', description: 'An end-user id: echoed back, and passed to upstreams that accept it.' },
    store: {
      type: 'boolean',
      nullable: true,
      description:
        'Store the response (default true, as OpenAI) for `GET /v1/responses/{id}` and `previous_response_id`. The answer says ' +
        '`store: false` when it was not stored (`store: false` asked, the store disabled, or the store unavailable).',
    },
    previous_response_id: {
      type: 'string',
      nullable: true,
      minLength: 1,
      description:
        'Continue a stored response: its conversation (its input and output, and those of the responses it continued) goes before ' +
        '`input`. Its `instructions` do not carry over. Unknown (or expired, or another API key\'s): 400 `previous_response_not_found`.',
    },
    conversation: {
      oneOf: [
        // (null rides on the string branch, as `stop` does: OpenAPI 3.0 has no null type.)
        { type: 'string', minLength: 1, maxLength: 256, nullable: true },
        { type: 'object', required: ['id'], properties: { id: { type: 'string', minLength: 1, maxLength: 256 } } },
      ],
      description:
        'A conversation (POST /v1/conversations), as its id or `{"id": …}`: its items go before `input`, and once the response ' +
        'finished its input and output are added to it. Not with `previous_response_id`.',
    },
    background: {
      type: 'boolean',
      nullable: true,
      description:
        '`true`: answered at once with `status: "queued"`, run afterwards; poll `GET /v1/responses/{id}`, stop with ' +
        '`POST /v1/responses/{id}/cancel`. Needs `store`; with `stream`, the events as GET `?stream=true` gives them.',
    },
    include: { type: 'array', nullable: true, items: { type: 'string' }, description: unsupported('a non-empty list') },
    reasoning: { type: 'object', nullable: true, description: unsupported('anything but null') },
    prompt: { type: 'object', nullable: true, description: unsupported('stored prompt templates') },
    truncation: { type: 'string', enum: ['auto', 'disabled', null], nullable: true, description: '`disabled` (the default): a conversation that does not fit is an error. `auto` is not supported (400).' },
  },
  example: { model: 'tiny-llama', instructions: 'Answer briefly.', input: 'Say hello', max_output_tokens: 32, temperature: 0 },
} as const;

const outputText = {
  type: 'object',
  required: ['type', 'text', 'annotations'],
  properties: {
    type: { type: 'string', enum: ['output_text'] },
    text: { type: 'string' },
    annotations: { type: 'array', items: { type: 'object' } },
    logprobs: { type: 'array', items: { type: 'object' } },
  },
} as const;

const refusalPart = {
  type: 'object',
  required: ['type', 'refusal'],
  properties: { type: { type: 'string', enum: ['refusal'] }, refusal: { type: 'string' } },
} as const;

const itemStatus = { type: 'string', enum: ['in_progress', 'completed', 'incomplete'] } as const;

const outputItem = {
  type: 'object',
  required: ['type', 'id', 'status'],
  description:
    'A `message` (`role: "assistant"`, `content`: one `output_text` part, or a `refusal` part when the model refused) when the model wrote text, and one `function_call` ' +
    '(`call_id`, `name`, `arguments` as JSON text) per function the model called.',
  properties: {
    type: { type: 'string', enum: ['message', 'function_call'] },
    id: { type: 'string', example: 'msg_3f1c0a5e8b2d4c7f9a6e1b0d' },
    status: itemStatus,
    role: { type: 'string', enum: ['assistant'] },
    content: { type: 'array', items: { oneOf: [outputText, refusalPart] } },
    call_id: { type: 'string' },
    name: { type: 'string' },
    arguments: { type: 'string' },
  },
} as const;

export const responseSchema = {
  type: 'object',
  description: 'OpenAI\'s `Response` object. Request fields are echoed back (`tools`, `tool_choice`, `text`, `metadata`, ...).',
  required: ['id', 'object', 'created_at', 'status', 'model', 'output', 'error', 'incomplete_details'],
  properties: {
    id: { type: 'string', example: 'resp_3f1c0a5e8b2d4c7f9a6e1b0d' },
    object: { type: 'string', enum: ['response'] },
    created_at: { type: 'integer', example: 1764000000 },
    completed_at: { type: 'integer', nullable: true },
    status: {
      type: 'string',
      enum: ['queued', 'in_progress', 'completed', 'incomplete', 'failed', 'cancelled'],
      description: '`incomplete` when `max_output_tokens` cut the output; `queued`, `in_progress` and `cancelled` for background responses.',
    },
    error: {
      type: 'object',
      nullable: true,
      description: 'On `response.failed` (streams): what went wrong.',
      properties: { code: { type: 'string' }, message: { type: 'string' } },
    },
    incomplete_details: {
      type: 'object',
      nullable: true,
      properties: { reason: { type: 'string', enum: ['max_output_tokens', 'content_filter'] } },
    },
    model: { type: 'string', example: 'tiny-llama' },
    output: { type: 'array', items: outputItem },
    usage: {
      type: 'object',
      nullable: true,
      required: ['input_tokens', 'input_tokens_details', 'output_tokens', 'output_tokens_details', 'total_tokens'],
      properties: {
        input_tokens: { type: 'integer' },
        input_tokens_details: { type: 'object', properties: { cached_tokens: { type: 'integer' } } },
        output_tokens: { type: 'integer' },
        output_tokens_details: { type: 'object', properties: { reasoning_tokens: { type: 'integer' } } },
        total_tokens: { type: 'integer' },
      },
    },
    instructions: { type: 'string', nullable: true },
    max_output_tokens: { type: 'integer', nullable: true },
    temperature: { type: 'number', nullable: true },
    top_p: { type: 'number', nullable: true },
    tools: { type: 'array', items: tool },
    tool_choice: toolChoice,
    parallel_tool_calls: { type: 'boolean' },
    text: { type: 'object', properties: { format: textFormat } },
    metadata: { type: 'object', additionalProperties: { type: 'string' } },
    previous_response_id: { type: 'string', nullable: true },
    reasoning: { type: 'object', nullable: true },
    store: { type: 'boolean', description: 'Whether the response was stored (GET /v1/responses/{id}).' },
    background: { type: 'boolean' },
    truncation: { type: 'string', enum: ['disabled'] },
    user: { type: 'string' },
  },
} as const;

export const responseStreamEventSchema = {
  type: 'object',
  description:
    'One server-sent event of a streamed response (`event: <type>`, `data: <this>`): `response.created`, `response.in_progress`, ' +
    'per output item `response.output_item.added`, then for a message `response.content_part.added`, `response.output_text.delta`…, ' +
    '`response.output_text.done`, `response.content_part.done`, for a function call `response.function_call_arguments.delta`…, ' +
    '`response.function_call_arguments.done`, then `response.output_item.done`; last `response.completed` or `response.incomplete` ' +
    'with the whole response. An error after the stream started is an `error` event followed by `response.failed`.',
  required: ['type', 'sequence_number'],
  properties: {
    type: { type: 'string', example: 'response.output_text.delta' },
    sequence_number: { type: 'integer' },
    response: { $ref: '#/components/schemas/Response' },
    output_index: { type: 'integer' },
    content_index: { type: 'integer' },
    item_id: { type: 'string' },
    item: outputItem,
    part: outputText,
    delta: { type: 'string' },
    text: { type: 'string' },
    arguments: { type: 'string' },
    code: { type: 'string', nullable: true },
    message: { type: 'string' },
    param: { type: 'string', nullable: true },
  },
} as const;

export { inputItem as responsesInputItemSchema };

export const responseIdParamsSchema = {
  type: 'object',
  required: ['id'],
  properties: { id: { type: 'string', minLength: 1, maxLength: 256 } },
} as const;

/**
 * Query strings are validated without type coercion (see bootstrap.ts), so numbers and booleans
 * arrive as text: `limit` is checked by the route, which names the range in its 400.
 */
export const retrieveResponseQuerySchema = {
  type: 'object',
  properties: {
    stream: { type: 'string', enum: ['true', 'false'] },
    include: { oneOf: [{ type: 'string' }, { type: 'array', items: { type: 'string' } }] },
    include_obfuscation: { type: 'string', enum: ['true', 'false'] },
    starting_after: { type: 'string', pattern: '^[0-9]+$' },
  },
} as const;

export const inputItemListQuerySchema = {
  type: 'object',
  properties: {
    limit: { type: 'string', default: '20' },
    order: { type: 'string', enum: ['asc', 'desc'], default: 'desc' },
    after: { type: 'string', minLength: 1 },
    include: { oneOf: [{ type: 'string' }, { type: 'array', items: { type: 'string' } }] },
  },
} as const;

/** An input item as listed: the request's item with an id (`msg_`, `fc_`, `fco_`), message content as parts. */
const listedItem = {
  type: 'object',
  required: ['id', 'type'],
  additionalProperties: true,
  properties: {
    id: { type: 'string', example: 'msg_3f1c0a5e8b2d4c7f9a6e1b0d' },
    type: { type: 'string', enum: ['message', 'function_call', 'function_call_output'] },
  },
} as const;

export const inputItemListSchema = {
  type: 'object',
  required: ['object', 'data', 'first_id', 'last_id', 'has_more'],
  properties: {
    object: { type: 'string', enum: ['list'] },
    data: { type: 'array', items: listedItem },
    first_id: { type: 'string', nullable: true },
    last_id: { type: 'string', nullable: true },
    has_more: { type: 'boolean' },
  },
} as const;

export const deletedResponseSchema = {
  type: 'object',
  required: ['id', 'object', 'deleted'],
  properties: {
    id: { type: 'string', example: 'resp_3f1c0a5e8b2d4c7f9a6e1b0d' },
    object: { type: 'string', enum: ['response'] },
    deleted: { type: 'boolean', enum: [true] },
  },
} as const;

/** OpenAI's Conversation object. */
export const conversationSchema = {
  type: 'object',
  required: ['id', 'object', 'created_at', 'metadata'],
  properties: {
    id: { type: 'string', example: 'conv_3f1c0a5e8b2d4c7f9a6e1b0d' },
    object: { type: 'string', enum: ['conversation'] },
    created_at: { type: 'integer' },
    metadata: { type: 'object', additionalProperties: { type: 'string' } },
  },
} as const;

/** The OpenAPI components of /v1/responses and /v1/conversations (merged into openApiComponents). */
export const responsesApiComponents = {
  CreateResponseRequest: responsesRequestSchema,
  Response: responseSchema,
  ResponseStreamEvent: responseStreamEventSchema,
  ResponseItemList: inputItemListSchema,
  Conversation: conversationSchema,
  DeletedResponse: deletedResponseSchema,
} as const;

// The request body after validation.
export interface ResponsesContentPart {
  type: string;
  text?: string;
  [other: string]: unknown;
}

export interface ResponsesInputItem {
  type?: string;
  role?: 'user' | 'assistant' | 'system' | 'developer';
  content?: string | ResponsesContentPart[];
  call_id?: string;
  name?: string;
  arguments?: string;
  output?: string | ResponsesContentPart[];
  [other: string]: unknown;
}

export interface ResponsesTool {
  type: string;
  name?: string;
  description?: string | null;
  parameters?: Record<string, unknown> | null;
  strict?: boolean | null;
  [other: string]: unknown;
}

export type ResponsesTextFormat =
  | { type: 'text' }
  | { type: 'json_object' }
  | { type: 'json_schema'; name?: string; description?: string; schema?: Record<string, unknown>; strict?: boolean | null };

export interface ResponsesBody {
  model: string;
  input: string | ResponsesInputItem[];
  instructions?: string | null;
  max_output_tokens?: number | null;
  temperature?: number | null;
  top_p?: number | null;
  stream?: boolean | null;
  tools?: ResponsesTool[] | null;
  tool_choice?: 'none' | 'auto' | 'required' | { type: string; name?: string };
  parallel_tool_calls?: boolean | null;
  text?: { format?: ResponsesTextFormat; [other: string]: unknown };
  metadata?: Record<string, string> | null;
  user?: string;
  store?: boolean | null;
  previous_response_id?: string | null;
  conversation?: string | { id: string } | null;
  background?: boolean | null;
  include?: string[] | null;
  reasoning?: Record<string, unknown> | null;
  prompt?: Record<string, unknown> | null;
  truncation?: 'auto' | 'disabled' | null;
  [extra: string]: unknown;
}
