import { ModelProviderError, type ModelRouter } from '@infer/model-providers';
import { describe, expect, it } from 'vitest';
import { cacheKey } from '../cache/cache-key.js';
import { ApiError } from '../common/api-error.js';
import type { ModelCatalog } from '../models/model-catalog.js';
import { InferenceService } from './inference.service.js';
import type { ChatCompletionBody } from './openai.schemas.js';
import { responsesChatBody, responsesError, responsesParam } from './responses-request.js';
import type { ResponsesBody } from './responses.schemas.js';

const service = (tools: boolean) =>
  new InferenceService(
    { capabilitiesOf: () => ({ chat: true, completion: true, streaming: true, embeddings: false, tools }) } as unknown as ModelRouter,
    { get: (id: string) => ({ id }), resolve: (id: string) => id } as unknown as ModelCatalog,
  );

const body = (fields: Partial<ResponsesBody> & Record<string, unknown>): ResponsesBody => ({ model: 'm', input: 'hi', ...fields }) as ResponsesBody;
const chatOf = (fields: Partial<ResponsesBody> & Record<string, unknown>) => responsesChatBody(body(fields)).chat;

/** The job of a Responses request as the route builds it, errors in Responses terms. */
function job(fields: Partial<ResponsesBody> & Record<string, unknown>, tools = true) {
  const { chat, sources } = responsesChatBody(body(fields));
  try {
    return service(tools).chatJob(chat);
  } catch (error) {
    throw responsesError(error, sources);
  }
}

/** The ApiError a call throws (fails the test when it does not). */
function thrown(fn: () => unknown): ApiError {
  try {
    fn();
  } catch (error) {
    expect(error).toBeInstanceOf(ApiError);
    return error as ApiError;
  }
  throw new Error('expected an error');
}

describe('responsesChatBody', () => {
  it('maps a string input to one user message, instructions to a system message first, max_output_tokens to max_tokens', () => {
    expect(chatOf({ input: 'Say hello' })).toEqual({ model: 'm', messages: [{ role: 'user', content: 'Say hello' }] });
    expect(chatOf({ input: 'Say hello', instructions: 'Be brief.', max_output_tokens: 8, temperature: 0, top_p: 0.5 })).toEqual({
      model: 'm',
      messages: [
        { role: 'system', content: 'Be brief.' },
        { role: 'user', content: 'Say hello' },
      ],
      max_tokens: 8,
      temperature: 0,
      top_p: 0.5,
    });
    // Nulls are OpenAI's "not set".
    expect(chatOf({ instructions: null, max_output_tokens: null, temperature: null, tools: null, parallel_tool_calls: null })).toEqual({
      model: 'm',
      messages: [{ role: 'user', content: 'hi' }],
    });
  });

  it('is the same job, with the same cache key, as the equivalent chat request', () => {
    const responses = job({ input: 'Say hello', instructions: 'Be brief.', max_output_tokens: 8, temperature: 0, user: 'u1', metadata: { a: 'b' }, store: true });
    const chat = service(true).chatJob({
      model: 'm',
      messages: [
        { role: 'system', content: 'Be brief.' },
        { role: 'user', content: 'Say hello' },
      ],
      max_tokens: 8,
      temperature: 0,
    } as ChatCompletionBody);
    expect(cacheKey(responses, null)).toBe(cacheKey(chat, null));
    // `user` is passed on (as chat does); metadata and store are not.
    expect(responses.request.extra).toEqual({ user: 'u1' });
  });

  it('maps message items: any role, string or text parts (joined), type optional', () => {
    const chat = chatOf({
      input: [
        { role: 'developer', content: 'Rules.' },
        { type: 'message', role: 'user', content: [{ type: 'input_text', text: 'Hello ' }, { type: 'input_text', text: 'there' }] },
        // An output item sent back as is (id, status and annotations are ignored).
        { type: 'message', id: 'msg_1', status: 'completed', role: 'assistant', content: [{ type: 'output_text', text: 'Hi!', annotations: [] }] } as never,
        { role: 'system', content: [] },
      ],
    });
    expect(chat.messages).toEqual([
      { role: 'developer', content: 'Rules.' },
      { role: 'user', content: 'Hello there' },
      { role: 'assistant', content: 'Hi!' },
      { role: 'system', content: '' },
    ]);
  });

  it('refuses content parts other than text, naming the part', () => {
    const image = thrown(() => chatOf({ input: [{ role: 'user', content: [{ type: 'input_text', text: 'What is this?' }, { type: 'input_image', image_url: 'x' } as never] }] }));
    expect(image).toMatchObject({ status: 400, param: 'input[0].content[1].type', code: 'unsupported_value' });
    expect(image.message).toContain('input_image');
    expect(thrown(() => chatOf({ input: [{ role: 'user', content: [{ type: 'input_text' }] }] }))).toMatchObject({ param: 'input[0].content[0].text' });
    expect(thrown(() => chatOf({ input: [{ role: 'user', content: 'x' }, { role: 'user' }] }))).toMatchObject({ param: 'input[1].content' });
    expect(thrown(() => chatOf({ input: [{ content: 'x' }] }))).toMatchObject({ param: 'input[0].role' });
    expect(thrown(() => chatOf({ input: [{ type: 'reasoning', summary: [] }] }))).toMatchObject({ param: 'input[0].type', code: 'unsupported_value' });
    expect(thrown(() => chatOf({ input: [] }))).toMatchObject({ param: 'input' });
    // ... unless instructions give a message.
    expect(chatOf({ input: [], instructions: 'Talk.' }).messages).toEqual([{ role: 'system', content: 'Talk.' }]);
  });

  it('maps function_call history to an assistant message with tool_calls and function_call_output to tool messages', () => {
    const chat = chatOf({
      input: [
        { role: 'user', content: 'Weather and time in Paris?' },
        { role: 'assistant', content: 'Let me check.' },
        { type: 'function_call', call_id: 'call_1', name: 'get_weather', arguments: '{"city":"Paris"}', id: 'fc_1', status: 'completed' },
        { type: 'function_call', call_id: 'call_2', name: 'get_time', arguments: '{}' },
        { type: 'function_call_output', call_id: 'call_1', output: '{"c":21}' },
        { type: 'function_call_output', call_id: 'call_2', output: [{ type: 'input_text', text: '12:00' }] },
        // A call with no assistant text before it gets an assistant message of its own.
        { type: 'function_call', call_id: 'call_3', name: 'get_weather', arguments: '{"city":"Rome"}' },
        { type: 'function_call_output', call_id: 'call_3', output: '{"c":25}' },
      ],
    });
    expect(chat.messages).toEqual([
      { role: 'user', content: 'Weather and time in Paris?' },
      {
        role: 'assistant',
        content: 'Let me check.',
        tool_calls: [
          { id: 'call_1', type: 'function', function: { name: 'get_weather', arguments: '{"city":"Paris"}' } },
          { id: 'call_2', type: 'function', function: { name: 'get_time', arguments: '{}' } },
        ],
      },
      { role: 'tool', tool_call_id: 'call_1', content: '{"c":21}' },
      { role: 'tool', tool_call_id: 'call_2', content: '12:00' },
      { role: 'assistant', content: null, tool_calls: [{ id: 'call_3', type: 'function', function: { name: 'get_weather', arguments: '{"city":"Rome"}' } }] },
      { role: 'tool', tool_call_id: 'call_3', content: '{"c":25}' },
    ]);
    expect(thrown(() => chatOf({ input: [{ type: 'function_call', name: 'f', arguments: '{}' }] }))).toMatchObject({ param: 'input[0].call_id' });
    expect(thrown(() => chatOf({ input: [{ type: 'function_call', call_id: 'c', arguments: '{}' }] }))).toMatchObject({ param: 'input[0].name' });
    expect(thrown(() => chatOf({ input: [{ type: 'function_call', call_id: 'c', name: 'f' }] }))).toMatchObject({ param: 'input[0].arguments' });
    expect(thrown(() => chatOf({ input: [{ type: 'function_call_output', call_id: 'c' }] }))).toMatchObject({ param: 'input[0].output' });
    expect(thrown(() => chatOf({ input: [{ type: 'function_call_output', call_id: 'c', output: [{ type: 'input_image' }] }] }))).toMatchObject({
      param: 'input[0].output[0].type',
    });
  });

  it('maps flat function tools, tool_choice and parallel_tool_calls to the chat forms', () => {
    const chat = chatOf({
      tools: [
        { type: 'function', name: 'get_weather', description: 'Weather', parameters: { type: 'object' }, strict: true },
        { type: 'function', name: 'get_time', description: null, parameters: null, strict: null },
      ],
      tool_choice: { type: 'function', name: 'get_time' },
      parallel_tool_calls: false,
    });
    expect(chat.tools).toEqual([
      { type: 'function', function: { name: 'get_weather', description: 'Weather', parameters: { type: 'object' }, strict: true } },
      { type: 'function', function: { name: 'get_time' } },
    ]);
    expect(chat.tool_choice).toEqual({ type: 'function', function: { name: 'get_time' } });
    expect(chat.parallel_tool_calls).toBe(false);
    expect(chatOf({ tools: [{ type: 'function', name: 'f' }], tool_choice: 'required' }).tool_choice).toBe('required');
    expect(chatOf({ tools: [] }).tools).toBeUndefined();
  });

  it('refuses built-in tools and tool choices, naming them', () => {
    expect(thrown(() => chatOf({ tools: [{ type: 'function', name: 'f' }, { type: 'web_search' }] }))).toMatchObject({
      status: 400,
      param: 'tools[1].type',
      code: 'unsupported_parameter',
    });
    expect(thrown(() => chatOf({ tools: [{ type: 'function' }] }))).toMatchObject({ param: 'tools[0].name' });
    expect(thrown(() => chatOf({ tools: [{ type: 'function', name: 'f' }], tool_choice: { type: 'file_search' } }))).toMatchObject({
      param: 'tool_choice.type',
      code: 'unsupported_parameter',
    });
    expect(thrown(() => chatOf({ tools: [{ type: 'function', name: 'f' }], tool_choice: { type: 'function' } }))).toMatchObject({ param: 'tool_choice.name' });
  });

  it('applies the chat checks with the params in Responses terms', () => {
    const tools = [{ type: 'function', name: 'f' }];
    // A model without tool calling: refused, whether the tools are in the request or in its history.
    expect(thrown(() => job({ tools }, false))).toMatchObject({ status: 400, param: 'tools', code: 'unsupported_parameter' });
    const history = [
      { role: 'user' as const, content: 'x' },
      { type: 'function_call', call_id: 'c', name: 'f', arguments: '{}' },
      { type: 'function_call_output', call_id: 'c', output: 'y' },
    ];
    expect(thrown(() => job({ input: history }, false))).toMatchObject({ param: 'input', code: 'unsupported_parameter' });
    // tool_choice "none" asks for text: answered by a model without tools.
    expect(job({ tools, tool_choice: 'none' }, false).request).not.toHaveProperty('tools');
    expect(thrown(() => job({ tools, tool_choice: { type: 'function', name: 'g' } }))).toMatchObject({ param: 'tool_choice.name' });
    expect(thrown(() => job({ tools: [...tools, ...tools] }))).toMatchObject({ param: 'tools[1].name' });
    expect(thrown(() => job({ tool_choice: 'required' }))).toMatchObject({ param: 'tool_choice' });
    const served = job({ input: history, tools, tool_choice: 'auto', parallel_tool_calls: false });
    expect(served.kind === 'chat' && served.request).toMatchObject({
      tools: [{ name: 'f' }],
      toolChoice: 'auto',
      parallelToolCalls: false,
      messages: [{ role: 'user' }, { role: 'assistant', content: '', toolCalls: [{ id: 'c', name: 'f', arguments: '{}' }] }, { role: 'tool', toolCallId: 'c', content: 'y' }],
    });
  });

  it('maps text.format to response_format', () => {
    expect(chatOf({ text: { format: { type: 'text' } } })).not.toHaveProperty('response_format');
    expect(chatOf({ text: { format: { type: 'json_object' } } })['response_format']).toEqual({ type: 'json_object' });
    const schema = { type: 'object', properties: { a: { type: 'string' } } };
    expect(chatOf({ text: { format: { type: 'json_schema', name: 'answer', schema, strict: true } } })['response_format']).toEqual({
      type: 'json_schema',
      json_schema: { name: 'answer', schema, strict: true },
    });
    expect(thrown(() => chatOf({ text: { format: { type: 'json_schema', name: 'a' } } }))).toMatchObject({ param: 'text.format.schema' });
    expect(thrown(() => chatOf({ text: { format: { type: 'json_schema', schema } } }))).toMatchObject({ param: 'text.format.name' });
    // Verbosity is accepted and ignored.
    expect(chatOf({ text: { verbosity: 'low' } })).toEqual({ model: 'm', messages: [{ role: 'user', content: 'hi' }] });
  });

  it('refuses what this server cannot serve, naming the field; accepts their "off" values', () => {
    const cases: Array<[Record<string, unknown>, string]> = [
      [{ include: ['message.output_text.logprobs'] }, 'include'],
      [{ reasoning: { effort: 'low' } }, 'reasoning'],
      [{ prompt: { id: 'pmpt_1' } }, 'prompt'],
      [{ truncation: 'auto' }, 'truncation'],
      [{ context_management: [{ type: 'compaction' }] }, 'context_management'],
    ];
    for (const [fields, param] of cases) {
      expect(thrown(() => chatOf(fields)), param).toMatchObject({ status: 400, param, code: 'unsupported_parameter' });
    }
    // A conversation (the route loads it) continues one thing: not with previous_response_id.
    expect(thrown(() => chatOf({ conversation: 'conv_1', previous_response_id: 'resp_1' }))).toMatchObject({ status: 400, param: 'conversation' });
    expect(chatOf({ conversation: { id: 'conv_1' } })).toEqual({ model: 'm', messages: [{ role: 'user', content: 'hi' }] });
    const off = { previous_response_id: null, conversation: null, background: false, include: [], reasoning: null, prompt: null, truncation: 'disabled', store: true };
    expect(chatOf(off as never)).toEqual({ model: 'm', messages: [{ role: 'user', content: 'hi' }] });
    expect(chatOf({ background: true })).toEqual({ model: 'm', messages: [{ role: 'user', content: 'hi' }] });
    // Output-neutral Responses fields are accepted and not passed on.
    expect(chatOf({ service_tier: 'auto', prompt_cache_key: 'k', safety_identifier: 's', stream: true, stream_options: { include_obfuscation: false } })).toEqual({
      model: 'm',
      messages: [{ role: 'user', content: 'hi' }],
    });
  });

  it('puts a stored conversation (previous_response_id) after the instructions and before the input', () => {
    const context = [
      { id: 'msg_1', type: 'message', role: 'user' as const, content: [{ type: 'input_text', text: 'What is 2+2?' }] },
      { id: 'msg_2', type: 'message', role: 'assistant' as const, status: 'completed', content: [{ type: 'output_text', text: '4', annotations: [] }] },
      { id: 'fc_1', type: 'function_call', call_id: 'call_1', name: 'add', arguments: '{"a":2}', status: 'completed' },
    ];
    const { chat, sources } = responsesChatBody(
      body({ instructions: 'Be brief.', previous_response_id: 'resp_0', input: [{ type: 'function_call_output', call_id: 'call_1', output: '4' }] }),
      context,
    );
    expect(chat.messages).toEqual([
      { role: 'system', content: 'Be brief.' },
      { role: 'user', content: 'What is 2+2?' },
      // The stored function call joins the assistant message before it, as in a request's own items.
      { role: 'assistant', content: '4', tool_calls: [{ id: 'call_1', type: 'function', function: { name: 'add', arguments: '{"a":2}' } }] },
      { role: 'tool', tool_call_id: 'call_1', content: '4' },
    ]);
    expect(chat).not.toHaveProperty('previous_response_id');
    expect(sources).toEqual([-1, -2, -2, 0]);
    // A chat check that names a stored message names the field that brought it in.
    expect(responsesParam('messages[1].content', sources)).toBe('previous_response_id');
    expect(responsesParam('messages[3].tool_call_id', sources)).toBe('input[0]');
    // An empty input is refused, unless a stored conversation comes before it.
    expect(thrown(() => responsesChatBody(body({ input: [] }), []))).toMatchObject({ param: 'input' });
    expect(responsesChatBody(body({ input: [] }), context).chat.messages).toHaveLength(2);
  });

  it('refuses chat-only fields with a pointer, and passes other unknown fields on as chat does', () => {
    expect(thrown(() => chatOf({ max_tokens: 5 }))).toMatchObject({ param: 'max_tokens', code: 'unknown_parameter', message: expect.stringContaining('max_output_tokens') });
    expect(thrown(() => chatOf({ messages: [] }))).toMatchObject({ param: 'messages' });
    expect(thrown(() => chatOf({ n: 2 }))).toMatchObject({ param: 'n' });
    expect(thrown(() => chatOf({ response_format: { type: 'json_object' } }))).toMatchObject({ param: 'response_format', message: expect.stringContaining('text.format') });
    expect(chatOf({ top_k: 1, logit_bias: { '5': 1 } })).toMatchObject({ top_k: 1, logit_bias: { '5': 1 } });
  });

  it("takes an assistant turn's refusal part as what it said; refuses one in another role", () => {
    const input = (role: 'user' | 'assistant') => [{ role, content: [{ type: 'refusal', refusal: 'No.' }] }];
    expect(chatOf({ input: [...input('assistant'), { role: 'user', content: 'Why?' }] }).messages[0]).toEqual({ role: 'assistant', content: 'No.' });
    expect(thrown(() => chatOf({ input: input('user') }))).toMatchObject({ param: 'input[0].content[0].type', code: 'unsupported_value' });
  });

  it('takes back what a Response echoes: tool_choice auto/none without tools, top_logprobs 0 or null, truncation disabled; drops max_tool_calls', () => {
    for (const toolChoice of ['auto', 'none'] as const) {
      expect(chatOf({ tool_choice: toolChoice, tools: [] })).not.toHaveProperty('tool_choice');
      expect(chatOf({ tool_choice: toolChoice })).not.toHaveProperty('tool_choice');
    }
    // Asking for a tool call without tools stays the chat route's 400.
    expect(chatOf({ tool_choice: 'required', tools: [] }).tool_choice).toBe('required');
    for (const topLogprobs of [0, null]) expect(chatOf({ top_logprobs: topLogprobs })).not.toHaveProperty('top_logprobs');
    expect(thrown(() => chatOf({ top_logprobs: 3 }))).toMatchObject({ param: 'top_logprobs', code: 'unsupported_parameter' });
    const chat = chatOf({ truncation: 'disabled', max_tool_calls: 2 });
    expect(chat).not.toHaveProperty('truncation');
    expect(chat).not.toHaveProperty('max_tool_calls');
  });
});

describe('responsesParam / responsesError', () => {
  it('renames chat params to the Responses fields they came from', () => {
    const sources = [-1, 0, 2];
    expect(responsesParam('messages', sources)).toBe('input');
    expect(responsesParam('messages[0].content', sources)).toBe('instructions');
    expect(responsesParam('messages[2].tool_call_id', sources)).toBe('input[2]');
    expect(responsesParam('messages[9]', sources)).toBe('input');
    expect(responsesParam('max_tokens', sources)).toBe('max_output_tokens');
    expect(responsesParam('tools[3].function.name', sources)).toBe('tools[3].name');
    expect(responsesParam('tool_choice.function.name', sources)).toBe('tool_choice.name');
    expect(responsesParam('response_format', sources)).toBe('text.format');
    expect(responsesParam('response_format.type', sources)).toBe('text.format.type');
    expect(responsesParam('response_format.json_schema.schema', sources)).toBe('text.format.schema');
    expect(responsesParam('logit_bias.5', sources)).toBe('logit_bias.5');
  });

  it('rewrites API and provider errors that name a chat param, and leaves the rest alone', () => {
    const provider = new ModelProviderError('response_format.json_schema.schema must be a JSON Schema object', { code: 'invalid_request', param: 'response_format.json_schema.schema' });
    expect(responsesError(provider, [])).toMatchObject({ status: 400, param: 'text.format.schema', code: 'invalid_request', message: provider.message });
    const context = new ModelProviderError('too long', { code: 'context_length_exceeded', param: 'messages' });
    expect(responsesError(context, [])).toMatchObject({ status: 400, param: 'input', code: 'context_length_exceeded' });
    const same = ApiError.invalidRequest('bad', 'temperature');
    expect(responsesError(same, [])).toBe(same);
    const upstream = new ModelProviderError('down', { code: 'upstream_unavailable' });
    expect(responsesError(upstream, [])).toBe(upstream);
    const bug = new Error('boom');
    expect(responsesError(bug, [])).toBe(bug);
  });
});
