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
