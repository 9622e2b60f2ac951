// Both GEMM kernels are checked wherever the conformance suite runs (conformance.test.ts): here
// the matmul cases again on the form this adapter does not pick by default (on SwiftShader in CI
// the default is `registers`). A file of its own so that it can run beside another test file.
import { createCpuBackend } from '@peft/backend-cpu';
import { conformanceCases } from '@peft/core/testing';
import { describe, it } from 'vitest';
import { createWebGpuBackend, webGpuAvailable } from './index.js';

const gpu = await webGpuAvailable();
if (!gpu.available) console.warn(`[backend-webgpu] skipping the WebGPU GEMM conformance cases: no adapter (${gpu.reason})`);

const otherGemm = gpu.available
  ? await (async () => {
      const b = await createWebGpuBackend();
      const kind = b.gemm === 'registers' ? 'tiled' : 'registers';
      b.destroy();
      return kind;
    })()
  : 'tiled';

describe.skipIf(!gpu.available)(`webgpu backend conformance, matmul on the ${otherGemm} GEMM kernel`, () => {
  for (const c of conformanceCases({
    create: () => createWebGpuBackend({ gemm: otherGemm }),
    dtypes: ['float32', 'float16', 'bfloat16'],
    reference: () => createCpuBackend(),
  })) {
    // Same-dtype and float32-output products; the 16-bit-output mixed kinds run on the default
    // kernel (conformance.test.ts). Each case costs ~5 s on SwiftShader, almost all of it
    // compiling the pipelines (one per dtype combination and transpose/accumulate variant).
    if (c.name.includes('matmul') && !/a, \w+ b, (float16|bfloat16) out/.test(c.name)) it(`[gemm ${otherGemm}] ${c.name}`, c.run);
    else if (c.name === 'destroy the backend') it(c.name, c.run);
  }
});
