// The README snippet, verbatim apart from the import paths (the README imports the packages by name).
import { backward, crossEntropy, Generator, Linear, memoryInfo, tensor, tidy } from '@peft/core';
import { expect, it, vi } from 'vitest';
import { createWebGpuBackend, webGpuAvailable } from './index.js';

it('runs the README snippet', async () => {
  const log = vi.spyOn(console, 'log');
  // --- README ---
  const gpu = await webGpuAvailable();
  if (!gpu.available) {
    console.log(`no WebGPU adapter here (${gpu.reason}): nothing to run`);
  } else {
    const backend = await createWebGpuBackend();
    const layer = new Linear(4, 3, { backend, generator: new Generator(0) });
    const x = tensor([1, 2, 3, 4, -1, 0, 1, 2], [2, 4], { backend });
    const loss = tidy(() => crossEntropy(layer.forward(x), [2, 0]));
    backward(loss);
    console.log('loss', (await loss.item()).toFixed(4), 'weight grad', layer.weight.grad?.shape);
    for (const t of [x, loss]) t.dispose();
    layer.dispose();
    const { bytes, pooledBytes } = backend.memory();
    console.log('live tensors', memoryInfo(backend).tensors, '| GPU bytes', bytes, 'of which pooled', pooledBytes);
    backend.destroy();
  }
  // --- end ---
  const printed = log.mock.calls.map((c) => c.join(' ')).join('\n');
  log.mockRestore();
  if (gpu.available) expect(printed).toMatch(/loss \d+\.\d{4} weight grad 3,4\nlive tensors 0/);
  else expect(printed).toMatch(/no WebGPU adapter here/);
});
