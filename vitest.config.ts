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
    include: ['packages/*/src/**/*.test.ts', 'examples/*/src/**/*.test.ts', 'benchmarks/**/*.test.ts'],
    testTimeout: 60_000,
    hookTimeout: 60_000,
    pool: 'forks',
  },
});
