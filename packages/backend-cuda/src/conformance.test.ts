import { createCpuBackend } from '@peft/backend-cpu';
import { conformanceCases, gradcheckCases } from '@peft/core/testing';
import { describe, it } from 'vitest';
import { createCudaBackend, isAvailable } from './index.js';

const cuda = isAvailable();
if (!cuda.available) console.warn(`[backend-cuda] skipping the CUDA conformance suite: ${cuda.reason}`);
const only = process.env.PEFT_CUDA_CASES;

describe.skipIf(!cuda.available)(`cuda backend conformance (@peft/core/testing) — ${cuda.reason}`, () => {
  for (const c of conformanceCases({
    create: () => createCudaBackend(),
    dtypes: ['float32', 'float16', 'bfloat16'],
    // Outputs must also agree with the CPU backend (the meaning of every kernel) within twice the tolerance.
    reference: () => createCpuBackend(),
  })) {
    if (only && !c.name.includes(only) && c.name !== 'destroy the backend') continue;
    it(c.name, c.run);
  }
});

describe.skipIf(!cuda.available)('cuda backend conformance with the tiled GEMM (no cuBLASLt)', () => {
  for (const c of conformanceCases({ create: () => createCudaBackend({ cublas: false }), dtypes: ['float32', 'bfloat16'] })) {
    if (!c.name.startsWith('matmul') && !c.name.startsWith('destroy')) continue;
    it(c.name, c.run);
  }
});

describe.skipIf(!cuda.available)('cuda backend conformance: attention on the float32 kernels (tensorCores: false)', () => {
  for (const c of conformanceCases({ create: () => createCudaBackend({ tensorCores: false }), dtypes: ['float16', 'bfloat16'] })) {
    if (!c.name.startsWith('attention') && !c.name.startsWith('destroy')) continue;
    it(c.name, c.run);
  }
});

describe.skipIf(!cuda.available)('cuda backend gradient checks (@peft/core/testing)', () => {
  for (const c of gradcheckCases({ create: () => createCudaBackend() })) {
    if (only && !c.name.includes(only) && !c.name.startsWith('destroy')) continue;
    it(c.name, c.run);
  }
});
