import { defineConfig } from 'tsup';

export default defineConfig({
  entry: ['src/index.ts'],
  format: ['esm'],
  dts: true,
  clean: true,
  sourcemap: true,
  target: 'es2022',
  platform: 'node',
  // koffi is a native addon: loaded at run time (lazily, so importing this package never throws).
  external: ['koffi'],
});
