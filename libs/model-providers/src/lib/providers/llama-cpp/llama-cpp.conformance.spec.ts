import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { silentLogger } from '../../registry/provider-definition.js';
import { runModelProviderConformance } from '../../testing/conformance.js';
import { LlamaCppProvider } from './llama-cpp.provider.js';

// The built-in tiny model (written on first use), 4 parallel sequences, one thread.
runModelProviderConformance({
  name: 'llama-cpp (builtin:tiny-llama)',
  create: () =>
    new LlamaCppProvider(
      { modelPath: 'builtin:tiny-llama', builtinDir: mkdtempSync(join(tmpdir(), 'llama-cpp-conformance-')) },
      { modelName: 'tiny-llama', env: {}, baseDir: process.cwd(), logger: silentLogger },
    ),
  deterministic: true,
});
