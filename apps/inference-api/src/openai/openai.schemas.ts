/**
 * JSON Schemas of the OpenAI-compatible routes. One source of truth: Fastify compiles them for
 * validation (Ajv) and response serialisation (fast-json-stringify) at boot, and the same objects
 * are published as OpenAPI components (see ../openapi.ts). Keep them within the subset both
 * understand: OpenAPI 3.0 `nullable`, `example`, no `type` arrays.
 */

import { responsesApiComponents } from './responses.schemas.js';
import { toolsOf } from './tools-schema.js';

const stop = {
  description: 'Up to 4 sequences where generation stops. The stop sequence is not included in the output.',
  oneOf: [
    { type: 'string', nullable: true },
    { type: 'array', items: { type: 'string' }, maxItems: 4 },
  ],
} as const;

const streamOptions = {
  type: 'object',
  nullable: true,
  description: 'Only with `stream: true`.',
  properties: {
    include_usage: {
      type: 'boolean',
      description: 'Send a last chunk with `choices: []` and the `usage` of the whole request before `data: [DONE]`.',
    },
  },
} as const;

const responseFormat = {
  type: 'object',
  nullable: true,
  required: ['type'],
  description:
    '`{"type":"json_object"}` for any JSON, `{"type":"json_schema","json_schema":{"name":…,"schema":{…}}}` for JSON that ' +
    'matches a schema. The llama-cpp provider enforces it while sampling (a grammar built from the schema; node-llama-cpp ' +
    'supports a subset of JSON Schema); `openai-compatible` passes it to the upstream. Output can still stop at `max_tokens`.',
  properties: {
    type: { type: 'string', enum: ['text', 'json_object', 'json_schema'] },
    json_schema: {
      type: 'object',
      properties: { name: { type: 'string' }, description: { type: 'string' }, schema: { type: 'object' }, strict: { type: 'boolean', nullable: true } },
    },
  },
  example: { type: 'json_schema', json_schema: { name: 'answer', schema: { type: 'object', properties: { answer: { type: 'string' } }, required: ['answer'] } } },
} as const;

const sampling = {
  temperature: { type: 'number', minimum: 0, maximum: 2, nullable: true, example: 0, description: 'Sampling temperature; 0 is greedy and reproducible (and cacheable).' },
  top_p: { type: 'number', minimum: 0, maximum: 1, nullable: true },
  n: {
    type: 'integer',
    minimum: 1,
    maximum: 128,
    nullable: true,
    description:
      'Choices to generate (as OpenAI, up to 128). Each choice is a generation of its own, run concurrently: with a `seed`, choice i ' +
      'samples with `seed + i`; with `temperature: 0` the choices are identical and the response cache makes them one upstream call. ' +
      'Usage counts the prompt once and the completion tokens of every choice.',
  },
  stream: { type: 'boolean', nullable: true, description: 'Stream the result as server-sent events.' },
  stream_options: streamOptions,
  stop,
  seed: { type: 'integer', nullable: true, description: 'Makes sampling reproducible where the provider supports it (and makes the result cacheable).' },
  presence_penalty: { type: 'number', minimum: -2, maximum: 2, nullable: true },
  frequency_penalty: { type: 'number', minimum: -2, maximum: 2, nullable: true },
  user: { type: 'string', description: 'An end-user id, passed to upstreams that accept it.' },
  response_format: responseFormat,
  logit_bias: {
    type: 'object',
    nullable: true,
    additionalProperties: { type: 'number', minimum: -100, maximum: 100 },
    description: "Token id → bias added to its logit (-100 bans it). Token ids are the model's own vocabulary (as with vLLM and llama.cpp server).",
    example: { '50256': -100 },
  },
  top_k: { type: 'integer', minimum: -1, nullable: true, description: 'vLLM / llama.cpp extension: sample from the k most likely tokens (0 or -1: off).' },
  min_p: { type: 'number', minimum: 0, maximum: 1, nullable: true, description: 'vLLM / llama.cpp extension: drop tokens below min_p × the top probability.' },
  repetition_penalty: { type: 'number', minimum: 0, nullable: true, description: 'vLLM / llama.cpp extension: multiplicative penalty on repeated tokens, above 0 (1: off).' },
} as const;

const contentPart = {
  type: 'object',
  required: ['type'],
  properties: {
    type: { type: 'string', enum: ['text', 'refusal'], description: 'Only text parts are supported (and `refusal` parts in assistant messages).' },
    text: { type: 'string' },
    refusal: { type: 'string' },
  },
} as const;

/** A tool call in a response, or in an assistant message of the history. */
const toolCall = {
  type: 'object',
  required: ['id', 'type', 'function'],
  properties: {
    id: { type: 'string', minLength: 1 },
    type: { type: 'string', enum: ['function'] },
    function: {
      type: 'object',
      required: ['name', 'arguments'],
      properties: {
        name: { type: 'string', minLength: 1 },
        arguments: { type: 'string', description: 'The arguments as JSON text, as the model generated it (not validated).' },
      },
    },
  },
} as const;

/** Most prompts in one POST /v1/completions (a batch); with `n`, prompts × n is at most the `n` maximum. */
export const MAX_BATCH_PROMPTS = 32;

export const chatMessageSchema = {
  type: 'object',
  required: ['role'],
  properties: {
    role: { type: 'string', enum: ['system', 'developer', 'user', 'assistant', 'tool'] },
    content: {
      oneOf: [{ type: 'string', nullable: true }, { type: 'array', items: contentPart }],
    },
    name: { type: 'string' },
    tool_calls: { type: 'array', items: toolCall, description: 'Assistant messages: the tool calls the model made.' },
    tool_call_id: { type: 'string', minLength: 1, description: 'Tool messages (required there): the id of the call this result answers.' },
  },
  example: { role: 'user', content: 'Say hello' },
} as const;

const tool = {
  type: 'object',
  // `function` is required too (checked by InferenceService): listed here, Ajv would report a missing
  // `function` before an unsupported `type` (e.g. `custom` tools), which is the real problem.
  required: ['type'],
  properties: {
    type: { type: 'string', enum: ['function'], description: 'Only function tools are supported (`function` is required).' },
    function: {
      type: 'object',
      required: ['name'],
      properties: {
        name: { type: 'string', pattern: '^[a-zA-Z0-9_-]{1,64}$' },
        description: { type: 'string' },
        parameters: { type: 'object', description: 'JSON Schema of the arguments object.' },
        strict: { type: 'boolean', nullable: true },
      },
    },
  },
} as const;

const toolChoice = {
  description: '`none`, `auto` (the default with tools), `required`, or `{"type":"function","function":{"name":…}}` to force one tool.',
  oneOf: [
    { type: 'string', enum: ['none', 'auto', 'required'] },
    {
      type: 'object',
      required: ['type', 'function'],
      properties: {
        type: { type: 'string', enum: ['function'] },
        function: { type: 'object', required: ['name'], properties: { name: { type: 'string' } } },
      },
    },
  ],
} as const;

export const chatCompletionRequestSchema = {
  type: 'object',
  required: ['model', 'messages'],
  properties: {
    model: { type: 'string', minLength: 1, example: 'tiny-llama', description: 'A model id from GET /v1/models.' },
    messages: { type: 'array', minItems: 1, items: chatMessageSchema },
    max_tokens: { type: 'integer', minimum: 1, nullable: true, example: 32, description: 'Deprecated by OpenAI in favour of max_completion_tokens; both work.' },
    max_completion_tokens: { type: 'integer', minimum: 1, nullable: true },
    ...sampling,
    tools: toolsOf(tool),
    tool_choice: toolChoice,
    parallel_tool_calls: { type: 'boolean', nullable: true, description: 'false: at most one tool call per answer.' },
    logprobs: {
      type: 'boolean',
      nullable: true,
      description:
        'Return the log probability of each generated token (`choices[].logprobs.content`). Served by models whose provider gives them ' +
        '(`openai-compatible` upstreams); refused (400, `unsupported_parameter`) for others (the in-process llama.cpp provider). ' +
        'Answers with logprobs are cached under keys of their own.',
    },
    top_logprobs: { type: 'integer', minimum: 0, maximum: 20, nullable: true, description: 'With `logprobs: true`: also the most likely tokens at each position, up to 20.' },
    functions: { type: 'array', nullable: true, items: { type: 'object' }, description: 'Deprecated by OpenAI and not supported: use `tools`. Refused (400).' },
    function_call: { description: 'Deprecated by OpenAI and not supported: use `tool_choice`. Refused (400).' },
  },
  example: { model: 'tiny-llama', messages: [{ role: 'user', content: 'Say hello' }], max_tokens: 32, temperature: 0 },
} as const;

export const completionRequestSchema = {
  type: 'object',
  required: ['model', 'prompt'],
  properties: {
    model: { type: 'string', minLength: 1, example: 'tiny-llama' },
    prompt: {
      description:
        `A string, or an array of up to ${MAX_BATCH_PROMPTS} strings (a batch: one choice per prompt, or \`n\` per prompt, numbered ` +
        'prompt after prompt). Token-id prompts (arrays of integers) are not served: send text.',
      oneOf: [{ type: 'string' }, { type: 'array', items: {}, minItems: 1, maxItems: MAX_BATCH_PROMPTS }],
    },
    max_tokens: { type: 'integer', minimum: 1, nullable: true, example: 16, description: 'Defaults to 16, as in OpenAI.' },
    ...sampling,
    logprobs: {
      type: 'integer',
      minimum: 0,
      maximum: 20,
      nullable: true,
      description:
        'Return the log probability of each generated token and of the `logprobs` most likely tokens at each position (legacy form: ' +
        '`tokens`, `token_logprobs`, `top_logprobs`, `text_offset`). OpenAI allows up to 5, vLLM up to 20 by default. Served by models ' +
        'whose provider gives them (`openai-compatible` upstreams); refused (400, `unsupported_parameter`) for others.',
    },
    echo: { type: 'boolean', nullable: true, description: 'Return the prompt before the generated text (`text` starts with it).' },
    suffix: {
      type: 'string',
      nullable: true,
      description: 'Text after an insertion point: passed on to `openai-compatible` upstreams; the llama.cpp provider refuses a non-empty one (400), as vLLM does.',
    },
  },
  example: { model: 'tiny-llama', prompt: 'Once upon a time', max_tokens: 16, temperature: 0 },
} as const;

const usage = {
  type: 'object',
  required: ['prompt_tokens', 'completion_tokens', 'total_tokens'],
  properties: {
    prompt_tokens: { type: 'integer' },
    completion_tokens: { type: 'integer' },
    total_tokens: { type: 'integer' },
    prompt_tokens_details: {
      type: 'object',
      description: 'When the provider reports it: `cached_tokens`, the prompt tokens served from a prompt (prefix) cache.',
      properties: { cached_tokens: { type: 'integer' } },
    },
  },
} as const;

const tokenLogprobProperties = {
  token: { type: 'string' },
  logprob: { type: 'number', nullable: true, description: 'Natural log of the probability (<= 0).' },
  bytes: { type: 'array', nullable: true, items: { type: 'integer' }, description: "The token's UTF-8 bytes, when the provider gives them." },
} as const;

const topLogprob = { type: 'object', required: ['token', 'logprob', 'bytes'], properties: tokenLogprobProperties } as const;

/** `choices[].logprobs` of chat completions (and of their chunks). */
const chatLogprobs = {
  type: 'object',
  nullable: true,
  description: 'With `logprobs: true`: one entry per generated token (in a chunk: the tokens of that chunk); otherwise null.',
  properties: {
    content: {
      type: 'array',
      nullable: true,
      items: {
        type: 'object',
        required: ['token', 'logprob', 'bytes', 'top_logprobs'],
        properties: { ...tokenLogprobProperties, top_logprobs: { type: 'array', items: topLogprob } },
      },
    },
    refusal: { type: 'array', nullable: true, items: topLogprob },
  },
} as const;

/** `choices[].logprobs` of text completions: the legacy parallel arrays. */
const textLogprobs = {
  type: 'object',
  nullable: true,
  description: 'With `logprobs: N`: the generated tokens, their log probabilities, the N most likely tokens at each position, and each token\'s offset in `text`; otherwise null.',
  properties: {
    tokens: { type: 'array', items: { type: 'string' } },
    token_logprobs: { type: 'array', items: { type: 'number', nullable: true } },
    top_logprobs: { type: 'array', items: { type: 'object', nullable: true, additionalProperties: { type: 'number', nullable: true } } },
    text_offset: { type: 'array', items: { type: 'integer' } },
  },
} as const;

const finishReason = { type: 'string', enum: ['stop', 'length', 'content_filter', 'tool_calls'] } as const;

export const chatCompletionSchema = {
  type: 'object',
  required: ['id', 'object', 'created', 'model', 'choices', 'usage'],
  properties: {
    id: { type: 'string', example: 'chatcmpl-3f1c0a5e8b2d4c7f9a6e1b0d' },
    object: { type: 'string', enum: ['chat.completion'] },
    created: { type: 'integer', example: 1764000000 },
    model: { type: 'string', example: 'tiny-llama' },
    system_fingerprint: { type: 'string', nullable: true },
    choices: {
      type: 'array',
      items: {
        type: 'object',
        required: ['index', 'message', 'finish_reason'],
        properties: {
          index: { type: 'integer' },
          message: {
            type: 'object',
            required: ['role', 'content'],
            properties: {
              role: { type: 'string', enum: ['assistant'] },
              content: { type: 'string', nullable: true, description: 'null when the model only called tools.' },
              refusal: { type: 'string', nullable: true },
              tool_calls: { type: 'array', items: toolCall },
            },
          },
          logprobs: chatLogprobs,
          finish_reason: finishReason,
        },
      },
    },
    usage,
  },
} as const;

export const chatCompletionChunkSchema = {
  type: 'object',
  description: 'One server-sent event `data:` payload of a streamed chat completion. The stream ends with `data: [DONE]`.',
  required: ['id', 'object', 'created', 'model', 'choices'],
  properties: {
    id: { type: 'string' },
    object: { type: 'string', enum: ['chat.completion.chunk'] },
    created: { type: 'integer' },
    model: { type: 'string' },
    choices: {
      type: 'array',
      items: {
        type: 'object',
        properties: {
          index: { type: 'integer' },
          delta: {
            type: 'object',
            properties: {
              role: { type: 'string' },
              content: { type: 'string' },
              tool_calls: {
                type: 'array',
                description: 'Pieces of tool calls: the first piece of a call has its `id`, `type` and `function.name`; the `function.arguments` of its pieces, joined, are the arguments.',
                items: {
                  type: 'object',
                  required: ['index'],
                  properties: {
                    index: { type: 'integer' },
                    id: { type: 'string' },
                    type: { type: 'string', enum: ['function'] },
                    function: { type: 'object', properties: { name: { type: 'string' }, arguments: { type: 'string' } } },
                  },
                },
              },
            },
          },
          logprobs: chatLogprobs,
          finish_reason: { ...finishReason, nullable: true },
        },
      },
    },
    usage: { ...usage, nullable: true },
  },
} as const;

export const textCompletionSchema = {
  type: 'object',
  required: ['id', 'object', 'created', 'model', 'choices', 'usage'],
  properties: {
    id: { type: 'string', example: 'cmpl-3f1c0a5e8b2d4c7f9a6e1b0d' },
    object: { type: 'string', enum: ['text_completion'] },
    created: { type: 'integer' },
    model: { type: 'string' },
    system_fingerprint: { type: 'string', nullable: true },
    choices: {
      type: 'array',
      items: {
        type: 'object',
        required: ['index', 'text', 'finish_reason'],
        properties: {
          index: { type: 'integer' },
          text: { type: 'string' },
          logprobs: textLogprobs,
          finish_reason: finishReason,
        },
      },
    },
    usage,
  },
} as const;

export const embeddingRequestSchema = {
  type: 'object',
  required: ['model', 'input'],
  properties: {
    model: { type: 'string', minLength: 1, example: 'tiny-llama' },
    input: {
      description: 'A text, or an array of up to 2048 texts (each non-empty). Token arrays are not supported.',
      oneOf: [
        { type: 'string', minLength: 1 },
        { type: 'array', items: { type: 'string', minLength: 1 }, minItems: 1, maxItems: 2048 },
      ],
    },
    encoding_format: {
      type: 'string',
      enum: ['float', 'base64'],
      description: '`float` (default): arrays of numbers; `base64`: little-endian float32 bytes, base64 (what the OpenAI SDKs ask for).',
    },
    dimensions: { type: 'integer', minimum: 1, description: 'Vector size, for models that can shorten theirs (passed to openai-compatible upstreams; llama-cpp accepts only its own width).' },
    user: { type: 'string', description: 'An end-user id, passed to upstreams that accept it.' },
  },
  example: { model: 'tiny-llama', input: ['The food was delicious', 'The service was slow'] },
} as const;

export const embeddingListSchema = {
  type: 'object',
  required: ['object', 'data', 'model', 'usage'],
  properties: {
    object: { type: 'string', enum: ['list'] },
    data: {
      type: 'array',
      items: {
        type: 'object',
        required: ['object', 'index', 'embedding'],
        properties: {
          object: { type: 'string', enum: ['embedding'] },
          index: { type: 'integer' },
          embedding: {
            description: 'The vector (unit length): numbers, or a base64 string with `encoding_format: "base64"`.',
            oneOf: [{ type: 'array', items: { type: 'number' } }, { type: 'string' }],
          },
        },
      },
    },
    model: { type: 'string' },
    usage: {
      type: 'object',
      required: ['prompt_tokens', 'total_tokens'],
      properties: { prompt_tokens: { type: 'integer' }, total_tokens: { type: 'integer' } },
    },
  },
} as const;

export const modelSchema = {
  type: 'object',
  required: ['id', 'object', 'created', 'owned_by'],
  properties: {
    id: { type: 'string', example: 'tiny-llama' },
    object: { type: 'string', enum: ['model'] },
    created: { type: 'integer' },
    owned_by: { type: 'string', example: 'llama-cpp' },
  },
} as const;

export const modelListSchema = {
  type: 'object',
  required: ['object', 'data'],
  properties: {
    object: { type: 'string', enum: ['list'] },
    data: { type: 'array', items: modelSchema },
  },
} as const;

export const errorResponseSchema = {
  type: 'object',
  required: ['error'],
  properties: {
    error: {
      type: 'object',
      required: ['message', 'type', 'param', 'code'],
      properties: {
        message: { type: 'string' },
        type: { type: 'string', example: 'invalid_request_error' },
        param: { type: 'string', nullable: true },
        code: { type: 'string', nullable: true },
      },
    },
  },
  example: { error: { message: "The model 'gpt-5' does not exist or you do not have access to it.", type: 'invalid_request_error', param: 'model', code: 'model_not_found' } },
} as const;

export const predictQuerySchema = {
  type: 'object',
  required: ['input_text'],
  properties: {
    input_text: { type: 'string', minLength: 1, maxLength: 100_000, description: 'The prompt.' },
  },
} as const;

export const predictResponseSchema = {
  type: 'object',
  required: ['result'],
  properties: { result: { type: 'string', example: 'The generated text' } },
} as const;

/** Named OpenAPI components, added to the generated document. */
export const openApiComponents = {
  CreateChatCompletionRequest: chatCompletionRequestSchema,
  ChatCompletion: chatCompletionSchema,
  ChatCompletionChunk: chatCompletionChunkSchema,
  CreateCompletionRequest: completionRequestSchema,
  TextCompletion: textCompletionSchema,
  CreateEmbeddingRequest: embeddingRequestSchema,
  EmbeddingList: embeddingListSchema,
  Model: modelSchema,
  ModelList: modelListSchema,
  ErrorResponse: errorResponseSchema,
  PredictResponse: predictResponseSchema,
  ...responsesApiComponents,
} as const;

export type OpenApiComponentName = keyof typeof openApiComponents;

export function ref(name: OpenApiComponentName): { $ref: string } {
  return { $ref: `#/components/schemas/${name}` };
}

// Request body shapes after validation.
export interface ToolCallBody {
  id: string;
  type: 'function';
  function: { name: string; arguments: string };
}

export interface ChatCompletionBody {
  model: string;
  messages: Array<{
    role: 'system' | 'developer' | 'user' | 'assistant' | 'tool';
    content?: string | Array<{ type: 'text' | 'refusal'; text?: string; refusal?: string }> | null;
    name?: string;
    tool_calls?: ToolCallBody[];
    tool_call_id?: string;
  }>;
  tools?: Array<{ type: 'function'; function: { name: string; description?: string; parameters?: Record<string, unknown>; strict?: boolean | null } }> | null;
  tool_choice?: 'none' | 'auto' | 'required' | { type: 'function'; function: { name: string } };
  parallel_tool_calls?: boolean | null;
  logprobs?: boolean | null;
  top_logprobs?: number | null;
  max_tokens?: number | null;
  max_completion_tokens?: number | null;
  temperature?: number | null;
  top_p?: number | null;
  n?: number | null;
  stream?: boolean | null;
  stream_options?: { include_usage?: boolean } | null;
  stop?: string | string[] | null;
  seed?: number | null;
  presence_penalty?: number | null;
  frequency_penalty?: number | null;
  user?: string;
  [extra: string]: unknown;
}

export interface EmbeddingBody {
  model: string;
  input: string | string[];
  encoding_format?: 'float' | 'base64';
  dimensions?: number;
  user?: string;
  [extra: string]: unknown;
}

export interface CompletionBody {
  model: string;
  /** A string, or a batch (checked by InferenceService.completionJobs: strings only). */
  prompt: string | unknown[];
  max_tokens?: number | null;
  logprobs?: number | null;
  echo?: boolean | null;
  suffix?: string | null;
  temperature?: number | null;
  top_p?: number | null;
  n?: number | null;
  stream?: boolean | null;
  stream_options?: { include_usage?: boolean } | null;
  stop?: string | string[] | null;
  seed?: number | null;
  presence_penalty?: number | null;
  frequency_penalty?: number | null;
  user?: string;
  [extra: string]: unknown;
}
