import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['src/**/*.spec.ts'],
    // The harness spec runs the whole bench in --quick mode (real processes, ~1 minute).
    testTimeout: 180_000,
    hookTimeout: 60_000,
    pool: 'forks',
  },
});
