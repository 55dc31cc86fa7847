import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['src/**/*.e2e.ts'],
    testTimeout: 60_000,
    hookTimeout: 120_000,
    pool: 'forks',
    // Suites start real processes on free ports; run files one at a time so timings stay sane on 2 cores.
    fileParallelism: false,
    reporters: ['default'],
  },
});
