/**
 * The llama.cpp baseline: raw node-llama-cpp in its own process (pinned like the API), driven by
 * the bench over IPC so that it can alternate slices with the API while both stay loaded.
 *
 * Messages in:  { type: 'load', models: [{ name, path }], contextSize, threads }
 *               { type: 'run', model, prompt, maxTokens, durationMs }
 * Messages out: { type: 'loaded', loadMs } | { type: 'result', requests, tokens, elapsedMs } | { type: 'error', message }
 *
 * One generation = what the API's llama-cpp provider does for /v1/completions, minus the server:
 * LlamaCompletion on one context sequence, greedy (temperature 0), then the sequence is cleared.
 */
import type { LlamaCompletion, LlamaContextSequence } from 'node-llama-cpp';

interface LoadMessage {
  readonly type: 'load';
  readonly models: readonly { readonly name: string; readonly path: string }[];
  readonly contextSize: number;
  readonly threads: number;
}
interface RunMessage {
  readonly type: 'run';
  readonly model: string;
  readonly prompt: string;
  readonly maxTokens: number;
  readonly durationMs: number;
}
type Message = LoadMessage | RunMessage | { readonly type: 'stop' };

interface Loaded {
  readonly sequence: LlamaContextSequence;
  readonly completion: LlamaCompletion;
}

const loaded = new Map<string, Loaded>();
const send = (message: unknown): void => {
  process.send?.(message);
};

async function load(message: LoadMessage): Promise<void> {
  const started = performance.now();
  const lib = await import('node-llama-cpp');
  const llama = await lib.getLlama({ gpu: false, build: 'never', logLevel: lib.LlamaLogLevel.warn });
  for (const { name, path } of message.models) {
    const model = await llama.loadModel({ modelPath: path });
    const context = await model.createContext({ contextSize: message.contextSize, sequences: 1, threads: message.threads });
    const sequence = context.getSequence();
    loaded.set(name, { sequence, completion: new lib.LlamaCompletion({ contextSequence: sequence, autoDisposeSequence: false }) });
  }
  send({ type: 'loaded', loadMs: performance.now() - started });
}

async function run(message: RunMessage): Promise<void> {
  const target = loaded.get(message.model);
  if (!target) throw new Error(`unknown model ${message.model}`);
  let requests = 0;
  let tokens = 0;
  const started = performance.now();
  do {
    const before = target.sequence.tokenMeter.usedOutputTokens;
    await target.completion.generateCompletion(message.prompt, { maxTokens: message.maxTokens, temperature: 0 });
    tokens += target.sequence.tokenMeter.usedOutputTokens - before;
    requests += 1;
    await target.sequence.clearHistory();
  } while (performance.now() - started < message.durationMs);
  send({ type: 'result', requests, tokens, elapsedMs: performance.now() - started });
}

process.on('message', (message: Message) => {
  const work = message.type === 'load' ? load(message) : message.type === 'run' ? run(message) : Promise.resolve(process.exit(0));
  work.catch((error: unknown) => send({ type: 'error', message: error instanceof Error ? (error.stack ?? error.message) : String(error) }));
});
process.once('SIGTERM', () => process.exit(0));
process.once('SIGINT', () => process.exit(0));
// The parent went away (Ctrl-C on the bench, a crash): do not linger.
process.on('disconnect', () => process.exit(0));
send({ type: 'ready' });
