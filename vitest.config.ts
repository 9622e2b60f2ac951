import { availableParallelism } from 'node:os';
import { defineConfig } from 'vitest/config';

export default defineConfig({
  resolve: {
    conditions: ['@peft/source'],
  },
  ssr: {
    resolve: {
      conditions: ['@peft/source'],
    },
  },
  test: {
    include: [
      'packages/*/src/**/*.test.ts',
      'examples/*/src/**/*.test.ts',
      'benchmarks/**/*.test.ts',
      'packages/backend-cuda/scripts/**/*.test.ts',
    ],
    testTimeout: 60_000,
    hookTimeout: 60_000,
    pool: 'forks',
    // One test file per core. Vitest's default (cores − 1) leaves a core to its main process,
    // which mostly waits: on CI's 2 cores that ran the files one at a time with a core idle.
    // Files that write outside a temp folder name their files by process id.
    maxWorkers: availableParallelism(),
  },
});
