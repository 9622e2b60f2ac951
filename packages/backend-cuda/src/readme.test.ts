// The README snippet, verbatim apart from the import paths (the README imports the packages by name).
import { backward, crossEntropy, Generator, Linear, tensor, tidy } from '@peft/core';
import { expect, it, vi } from 'vitest';
import { createCudaBackend, isAvailable } from './index.js';

it('runs the README snippet', async () => {
  const log = vi.spyOn(console, 'log');
  // --- README ---
  const cuda = isAvailable();
  console.log(`CUDA available: ${cuda.available} (${cuda.reason})`);
  if (cuda.available) {
    const backend = createCudaBackend({ deviceIndex: 0 });
    const layer = new Linear(4, 3, { backend, generator: new Generator(0) });
    const x = tensor([1, 2, 3, 4, -1, 0, 1, 2], [2, 4], { backend });
    const loss = tidy(() => crossEntropy(layer.forward(x), [2, 0]));
    backward(loss);
    console.log('loss', (await loss.item()).toFixed(4), 'weight grad', layer.weight.grad?.shape);
    for (const t of [x, loss]) t.dispose();
    layer.dispose();
    const { current, peak, reserved } = backend.memoryStats();
    console.log(`GEMMs: ${backend.gemmLibrary} | bytes in use ${current}, peak ${peak}, reserved ${reserved}`);
    backend.destroy();
  }
  // --- end ---
  const printed = log.mock.calls.map((c) => c.join(' ')).join('\n');
  log.mockRestore();
  if (cuda.available) expect(printed).toMatch(/loss \d+\.\d{4} weight grad 3,4\nGEMMs: /);
  else expect(printed).toMatch(/CUDA available: false \(.+\)/);
});
