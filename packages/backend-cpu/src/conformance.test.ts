import { conformanceCases, gradcheckCases } from '@peft/core/testing';
import { describe, it } from 'vitest';
import { createCpuBackend } from './index.js';

// The GEMM engines behind the backend: WebAssembly SIMD always, the platform BLAS where one loads.
let blasSkip = '';
try {
  createCpuBackend({ gemm: 'blas', threads: 2 }).destroy();
} catch (e) {
  blasSkip = (e as Error).message;
}

const engines = [
  { gemm: 'wasm', label: 'wasm-simd GEMM', skip: '' },
  { gemm: 'blas', label: 'BLAS GEMM', skip: blasSkip },
] as const;

for (const { gemm, label, skip } of engines) {
  const name = skip ? `${label}, SKIPPED: ${skip}` : label;
  const create = () => createCpuBackend({ gemm, threads: 2 });

  describe.skipIf(Boolean(skip))(`cpu backend conformance (@peft/core/testing) on the ${name}`, () => {
    for (const c of skip ? [] : conformanceCases({ create, dtypes: ['float32', 'float16', 'bfloat16'] })) it(c.name, c.run);
    if (skip) it('conformance cases', () => {});
  });

  describe.skipIf(Boolean(skip))(`cpu backend gradient checks (@peft/core/testing) on the ${name}`, () => {
    for (const c of skip ? [] : gradcheckCases({ create })) it(c.name, c.run);
    if (skip) it('gradient checks', () => {});
  });
}
