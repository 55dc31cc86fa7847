/**
 * node-llama-cpp is an ES module with top-level await: it can never be `require()`d, so it is
 * loaded with a real dynamic `import()`, lazily (an app that serves only upstream models never
 * pays for it). One `Llama` instance (the native binding and its thread pool) is shared by every
 * provider of the process; models and contexts are per provider.
 */
import type { Llama, LlamaLogLevel } from 'node-llama-cpp';
import type { ProviderLogger } from '../../registry/provider-definition.js';

export type NodeLlamaCpp = typeof import('node-llama-cpp');

let modulePromise: Promise<NodeLlamaCpp> | undefined;

export function loadNodeLlamaCpp(): Promise<NodeLlamaCpp> {
  modulePromise ??= import('node-llama-cpp').catch((error: unknown) => {
    modulePromise = undefined;
    throw error;
  });
  return modulePromise;
}

const llamas = new Map<'cpu' | 'gpu', Promise<Llama>>();

/** Native log lines go to the logger of the provider that created the instance. */
export function getSharedLlama(options: { readonly gpu: boolean; readonly logger: ProviderLogger }): Promise<Llama> {
  const key = options.gpu ? 'gpu' : 'cpu';
  let llama = llamas.get(key);
  if (!llama) {
    llama = createLlama(options.gpu, options.logger);
    llamas.set(key, llama);
    llama.catch(() => llamas.delete(key));
  }
  return llama;
}

async function createLlama(gpu: boolean, logger: ProviderLogger): Promise<Llama> {
  const lib = await loadNodeLlamaCpp();
  return lib.getLlama({
    // 'never': use the prebuilt binaries shipped in node_modules, never try to compile llama.cpp.
    build: 'never',
    gpu: gpu ? 'auto' : false,
    logLevel: lib.LlamaLogLevel.warn,
    logger: (level: LlamaLogLevel, message: string) => {
      const text = message.trimEnd();
      if (text.length === 0) return;
      const entry = { component: 'llama.cpp', level };
      if (level === lib.LlamaLogLevel.error || level === lib.LlamaLogLevel.fatal) logger.error(entry, text);
      else if (level === lib.LlamaLogLevel.warn) logger.warn(entry, text);
      else logger.debug(entry, text);
    },
  });
}
