// Both attention forms are checked wherever the conformance suite runs (conformance.test.ts): here
// the attention cases again on the form this adapter does not pick by default (on SwiftShader in
// CI the default is `rows`). A file of its own so that it can run beside another test file.
import { createCpuBackend } from '@peft/backend-cpu';
import { conformanceCases, gradcheckCases } from '@peft/core/testing';
import { describe, expect, it } from 'vitest';
import { createWebGpuBackend, webGpuAvailable } from './index.js';

const gpu = await webGpuAvailable();
if (!gpu.available) console.warn(`[backend-webgpu] skipping the WebGPU attention cases: no adapter (${gpu.reason})`);

const otherKind = gpu.available
  ? await (async () => {
      const b = await createWebGpuBackend();
      const kind = b.attentionKind === 'rows' ? 'tiled' : 'rows';
      b.destroy();
      return kind;
    })()
  : 'tiled';

describe.skipIf(!gpu.available)(`webgpu backend conformance, attention on the ${otherKind} kernels`, () => {
  for (const c of conformanceCases({
    create: () => createWebGpuBackend({ attention: otherKind }),
    dtypes: ['float32', 'float16', 'bfloat16'],
    reference: () => createCpuBackend(),
  })) {
    if (c.name.includes('attention')) it(`[attention ${otherKind}] ${c.name}`, c.run);
  }
  for (const c of gradcheckCases({ create: () => createWebGpuBackend({ attention: otherKind }) })) {
    if (c.name.includes('attention')) it(`[attention ${otherKind}] ${c.name}`, c.run);
  }

  it('an unknown attention kind is refused with the allowed values', async () => {
    await expect(createWebGpuBackend({ attention: 'flash' as never })).rejects.toThrow(
      "attention must be 'tiled' or 'rows', got \"flash\"",
    );
  });
});
