import { createCpuBackend } from '@peft/backend-cpu';
import { conformanceCases, gradcheckCases } from '@peft/core/testing';
import { afterAll, describe, it } from 'vitest';
import { createWebGpuBackend, type WebGpuBackend, webGpuAvailable } from './index.js';

// The matmul cases again on the GEMM kernel this adapter does not pick by default: gemm.test.ts.

const gpu = await webGpuAvailable();
if (!gpu.available) console.warn(`[backend-webgpu] skipping the WebGPU conformance suite: no adapter (${gpu.reason})`);
const only = process.env.PEFT_WEBGPU_CASES;

// One backend for the conformance cases and the gradient checks: the kernels both run compile
// once (on SwiftShader, compiling a pipeline costs far more than running it). The suites' own
// "destroy" cases leave it alone; afterAll destroys it.
let shared: Promise<WebGpuBackend> | null = null;
const sharedBackend = async (): Promise<WebGpuBackend> => {
  const backend = await (shared ??= createWebGpuBackend());
  return new Proxy(backend, {
    get(target, key) {
      if (key === 'destroy') return () => {};
      const value = Reflect.get(target, key, target);
      return typeof value === 'function' ? value.bind(target) : value;
    },
  });
};
afterAll(async () => {
  (await shared)?.destroy();
});

describe.skipIf(!gpu.available)(`webgpu backend conformance (@peft/core/testing) — ${gpu.reason}`, () => {
  for (const c of conformanceCases({
    create: sharedBackend,
    dtypes: ['float32', 'float16', 'bfloat16'],
    // Outputs must also agree with the CPU backend (the meaning of every kernel) within twice the tolerance.
    reference: () => createCpuBackend(),
  })) {
    if (only && !c.name.includes(only) && c.name !== 'destroy the backend') continue;
    it(c.name, c.run);
  }
});

describe.skipIf(!gpu.available)('webgpu backend gradient checks (@peft/core/testing)', () => {
  for (const c of gradcheckCases({ create: sharedBackend })) {
    if (only && !c.name.includes(only) && !c.name.startsWith('destroy')) continue;
    it(c.name, c.run);
  }
});
