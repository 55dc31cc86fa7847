import { silentLogger } from '../../registry/provider-definition.js';
import { runModelProviderConformance } from '../../testing/conformance.js';
import { LlamaCppProvider } from './llama-cpp.provider.js';

// The built-in tiny model (written once into <tmpdir>/infer-model-providers), 4 parallel sequences, one thread.
runModelProviderConformance({
  name: 'llama-cpp (builtin:tiny-llama)',
  create: () =>
    new LlamaCppProvider(
      { modelPath: 'builtin:tiny-llama' },
      { modelName: 'tiny-llama', env: {}, baseDir: process.cwd(), logger: silentLogger },
    ),
  deterministic: true,
});
