import { createCpuBackend } from '@peft/backend-cpu';
import { conformanceCases, gradcheckCases } from '@peft/core/testing';
import { describe, it } from 'vitest';
import { createWebGpuBackend, webGpuAvailable } from './index.js';

const gpu = await webGpuAvailable();
if (!gpu.available) console.warn(`[backend-webgpu] skipping the WebGPU conformance suite: no adapter (${gpu.reason})`);
const only = process.env.PEFT_WEBGPU_CASES;

describe.skipIf(!gpu.available)(`webgpu backend conformance (@peft/core/testing) — ${gpu.reason}`, () => {
  for (const c of conformanceCases({
    create: () => createWebGpuBackend(),
    dtypes: ['float32', 'float16', 'bfloat16'],
    // Outputs must also agree with the CPU backend (the meaning of every kernel) within twice the tolerance.
    reference: () => createCpuBackend(),
  })) {
    if (only && !c.name.includes(only) && c.name !== 'destroy the backend') continue;
    it(c.name, c.run);
  }
});

describe.skipIf(!gpu.available)('webgpu backend gradient checks (@peft/core/testing)', () => {
  for (const c of gradcheckCases({ create: () => createWebGpuBackend() })) {
    if (only && !c.name.includes(only) && !c.name.startsWith('destroy')) continue;
    it(c.name, c.run);
  }
});

// Both GEMM kernels are checked wherever the suite runs: the matmul cases again on the form this
// adapter does not pick by default (on SwiftShader in CI the default is \`registers\`).
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
    // kernel above (each case costs ~5 s on SwiftShader's emulated workgroup barriers).
    if (c.name.includes('matmul') && !/a, \w+ b, (float16|bfloat16) out/.test(c.name)) it(`[gemm ${otherGemm}] ${c.name}`, c.run);
  }
});
