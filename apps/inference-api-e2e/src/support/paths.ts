import { readFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

export const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), '../../../..');
export const apiMain = resolve(repoRoot, 'apps/inference-api/dist/main.js');
/** The V8 flags the API runs with (`nodeArgs` in its package.json, as PM2 and `npm start` use them). */
export const apiNodeArgs: readonly string[] = (JSON.parse(readFileSync(resolve(repoRoot, 'apps/inference-api/package.json'), 'utf8')) as { nodeArgs: string[] }).nodeArgs;
/** A shared folder for the built-in GGUF so suites do not each write it. */
export const modelsDir = resolve(repoRoot, '.cache/models');
