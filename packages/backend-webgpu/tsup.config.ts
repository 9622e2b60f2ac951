import { defineConfig } from 'tsup';

export default defineConfig({
  entry: ['src/index.ts'],
  format: ['esm'],
  // The public API names GPUDevice and friends: keep the global WebGPU types with the declarations.
  dts: { banner: '/// <reference types="@webgpu/types" />' },
  clean: true,
  sourcemap: true,
  target: 'es2022',
  platform: 'neutral',
  // Node-only: loaded by a dynamic import when no GPUDevice is given and navigator.gpu is absent.
  external: ['webgpu'],
});
