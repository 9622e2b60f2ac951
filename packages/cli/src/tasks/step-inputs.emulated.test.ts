// The studies' tasks under train() with CUDA graphs, on the CUDA kernels run by the host emulator:
// each bucketed micro-batch shape is captured once and replayed with other batches' values in
// its input tensors (LoRA dropout on: its per-example keys are inputs too), and the run gives the
// numbers of the same padded steps run eagerly, so the loss depends on nothing but those inputs.
import { createCpuBackend } from '@peft/backend-cpu';
import type { Backend } from '@peft/core';
import { describe, expect, it } from 'vitest';
import { useEmulator } from '../../../backend-cuda/src/emulator.testkit.js';
import { classification, ner, run } from './step-inputs.testkit.js';

const emu = await useEmulator();

describe.skipIf(!emu)('the studies’ tasks under train() with CUDA graphs on the host emulator', async () => {
  const { createCudaBackend } = await import('@peft/backend-cuda');

  for (const [name, make] of [
    ['ClassificationTask', classification],
    ['GenerativeNerTask', ner],
  ] as const) {
    it(`${name}: replayed bucketed steps give the eager padded steps' losses and adapter exactly, LoRA dropout on`, async () => {
      const cuda = createCudaBackend();
      const withDropout = (backend: Backend) => make(backend, 0.1);
      const graphed = await run(withDropout, cuda, { graph: true });
      const eager = await run(withDropout, cuda, { pad: true });
      expect(graphed.result.graphs.error).toBeNull();
      expect(graphed.result.graphs.captured).toBeGreaterThan(2);
      expect(graphed.result.graphs.replays).toBeGreaterThan(0);
      expect(eager.result.graphs).toEqual({ captured: 0, replays: 0, error: null });
      expect(graphed.losses).toHaveLength(4);
      expect(graphed.losses).toEqual(eager.losses);
      expect(graphed.weights).toEqual(eager.weights);
      // Against the CPU backend's unpadded steps: the kernels' float32 rounding only.
      const cpu = createCpuBackend();
      const onCpu = await run(withDropout, cpu);
      const rel = graphed.losses.map((l, i) => Math.abs(l - onCpu.losses[i]!) / onCpu.losses[i]!);
      expect(Math.max(...rel)).toBeLessThan(1e-4);
      cuda.destroy();
      cpu.destroy();
    }, 600_000);
  }
});
