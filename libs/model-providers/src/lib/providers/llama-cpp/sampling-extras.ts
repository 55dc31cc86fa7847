import { ModelProviderError } from '../../contract/errors.js';

/**
 * Sampling parameters beyond the contract's, read from the request's pass-through fields (`extra`)
 * with the names and meanings vLLM and the llama.cpp server give them, so a client that tunes one of
 * those servers gets the same behaviour here:
 * - `logit_bias` (OpenAI): `{"<token id>": bias}`, bias in [-100, 100] added to the token's logit
 *   (-100 bans it). Token ids are the model's own vocabulary, as with vLLM and llama.cpp server.
 * - `top_k`: keep the k most likely tokens (0 or -1: off).
 * - `min_p`: drop tokens below `min_p` times the probability of the most likely one (0: off).
 * - `repetition_penalty`: llama.cpp's multiplicative repeat penalty over the last 64 tokens (1: off).
 */
export interface SamplingExtras {
  readonly topK: number;
  readonly minP: number;
  readonly repetitionPenalty: number;
  /** [token, bias] pairs; a bias of -100 means "never". */
  readonly logitBias: ReadonlyArray<readonly [number, number]>;
}

export const NO_SAMPLING_EXTRAS: SamplingExtras = Object.freeze({ topK: 0, minP: 0, repetitionPenalty: 1, logitBias: Object.freeze([]) });

/** Reads and validates the extras; `vocabularySize` bounds logit_bias token ids (undefined: unknown, logit_bias refused). */
export function samplingExtrasOf(extra: Readonly<Record<string, unknown>> | undefined, vocabularySize: number | undefined): SamplingExtras {
  if (extra === undefined) return NO_SAMPLING_EXTRAS;
  const topK = extra['top_k'];
  const minP = extra['min_p'];
  const penalty = extra['repetition_penalty'];
  const bias = extra['logit_bias'];
  if (topK == null && minP == null && penalty == null && bias == null) return NO_SAMPLING_EXTRAS;
  if (topK != null && !(typeof topK === 'number' && Number.isInteger(topK) && topK >= -1)) {
    throw invalid('top_k must be an integer >= -1 (0 or -1: off)', 'top_k');
  }
  if (minP != null && !(typeof minP === 'number' && minP >= 0 && minP <= 1)) throw invalid('min_p must be a number between 0 and 1', 'min_p');
  if (penalty != null && !(typeof penalty === 'number' && penalty > 0 && Number.isFinite(penalty))) {
    throw invalid('repetition_penalty must be a number above 0 (1: off)', 'repetition_penalty');
  }
  return {
    topK: typeof topK === 'number' && topK > 0 ? topK : 0,
    minP: typeof minP === 'number' ? minP : 0,
    repetitionPenalty: typeof penalty === 'number' ? penalty : 1,
    logitBias: bias == null ? [] : logitBiasOf(bias, vocabularySize),
  };
}

function logitBiasOf(value: unknown, vocabularySize: number | undefined): Array<[number, number]> {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw invalid('logit_bias must be an object mapping token ids to biases between -100 and 100', 'logit_bias');
  }
  const entries = Object.entries(value as Record<string, unknown>);
  if (entries.length > 0 && vocabularySize === undefined) {
    throw new ModelProviderError("logit_bias is not supported for this model (its vocabulary size is unknown)", { code: 'invalid_request', param: 'logit_bias' });
  }
  return entries.map(([key, bias]) => {
    const token = /^\d+$/.test(key) ? Number(key) : Number.NaN;
    if (!Number.isSafeInteger(token) || token >= (vocabularySize as number)) {
      throw invalid(`logit_bias: '${key}' is not a token id of this model (0 to ${(vocabularySize as number) - 1})`, `logit_bias.${key}`);
    }
    if (typeof bias !== 'number' || !(bias >= -100 && bias <= 100)) throw invalid(`logit_bias: the bias of token ${key} must be between -100 and 100`, `logit_bias.${key}`);
    return [token, bias];
  });
}

function invalid(message: string, param: string): ModelProviderError {
  return new ModelProviderError(message, { code: 'invalid_request', param });
}

/**
 * The legacy completions fields that change the shape of the answer, read from `extra`:
 * - `echo: true`: the answer's text starts with the prompt (as OpenAI and vLLM do);
 * - `suffix` (text after an insertion point): not supported, as on vLLM; refused when non-empty
 *   rather than ignored, which would answer something else than what was asked.
 * Returns whether to echo.
 */
export function completionEchoOf(extra: Readonly<Record<string, unknown>> | undefined): boolean {
  if (extra === undefined) return false;
  const echo = extra['echo'];
  const suffix = extra['suffix'];
  if (echo != null && typeof echo !== 'boolean') throw invalid('echo must be a boolean', 'echo');
  if (suffix != null && suffix !== '') {
    throw new ModelProviderError('suffix is not supported by this model (no insertion after a suffix)', { code: 'not_supported', param: 'suffix' });
  }
  return echo === true;
}
