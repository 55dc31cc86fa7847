import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

export const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), '../../../..');
export const apiMain = resolve(repoRoot, 'apps/inference-api/dist/main.js');
/** A shared folder for the built-in GGUF so suites do not each write it. */
export const modelsDir = resolve(repoRoot, '.cache/models');
