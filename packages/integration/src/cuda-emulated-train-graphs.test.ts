// train() with CUDA graphs, on the CUDA kernels run by the host emulator: each micro-batch shape
// the task gives as fixed-shape inputs (TrainTask.stepInputs), the gradient norm and the update
// are captured once and replayed, and the run gives the eager run's numbers exactly; with dropout
// the capture fails, 'auto' says why and runs eagerly, `graph: true` refuses. On the CPU backend
// (no graphs) the step inputs give the losses of the task's own `loss`.
import { createCpuBackend } from '@peft/backend-cpu';
import type { Backend } from '@peft/core';
import { type StepInfo, type TrainOptions, train } from '@peft/trainer';
import { describe, expect, it } from 'vitest';
import { useEmulator } from '../../backend-cuda/src/emulator.testkit.js';
import { graphTask } from './train-graphs.js';

const OPTIONS: TrainOptions = {
  epochs: 2,
  batchSize: 4,
  microBatchSize: 2,
  lr: 4e-3,
  warmupSteps: 1,
  evaluateUntrained: false,
  evaluateTest: false,
  progress: false,
};

async function run(backend: Backend, o: { steps?: boolean; dropout?: number; bucket?: 'always'; graph?: boolean | 'auto' }) {
  const task = await graphTask(backend, o);
  const steps: StepInfo[] = [];
  try {
    const result = await train(task, { ...OPTIONS, graph: o.graph, onStep: (s) => void steps.push(s) });
    return { result, losses: steps.map((s) => s.loss), norms: steps.map((s) => s.gradNorm), weights: await task.weights() };
  } finally {
    task.dispose();
  }
}

describe('train() with fixed-shape step inputs on the CPU backend', () => {
  it('gives the losses and weights of the task’s own loss (no graphs on the CPU)', async () => {
    const cpu = createCpuBackend();
    const viaSteps = await run(cpu, {});
    const viaLoss = await run(cpu, { steps: false });
    expect(viaSteps.losses).toHaveLength(6);
    expect(viaSteps.result.graphs).toEqual({ captured: 0, replays: 0, error: null });
    expect(viaSteps.losses).toEqual(viaLoss.losses);
    expect(viaSteps.weights).toEqual(viaLoss.weights);
    expect(viaSteps.losses[5]!).toBeLessThan(viaSteps.losses[0]!);
    cpu.destroy();
  }, 120_000);
});

const emu = await useEmulator();

describe.skipIf(!emu)('train() with CUDA graphs on the host emulator', async () => {
  const { createCudaBackend } = await import('@peft/backend-cuda');

  it('captures each micro-batch shape, the norm and the update once, replays them, and gives the eager run’s numbers exactly', async () => {
    const cuda = createCudaBackend();
    const eager = await run(cuda, { graph: false, bucket: 'always' });
    const graphed = await run(cuda, { graph: true, bucket: 'always' });
    const cpu = createCpuBackend();
    const onCpu = await run(cpu, {});
    // 6 steps of 2 micro-batches of one bucket [2, 8]: micro-batch graph captured on its 2nd call
    // (step 1), norm and update graphs on their 2nd call (step 2; the first update runs eagerly,
    // making AdamW's moments).
    expect(graphed.result.graphs.error).toBeNull();
    expect(graphed.result.graphs.captured).toBe(3);
    expect(graphed.result.graphs.replays).toBe(10 + 4 + 3);
    expect(eager.result.graphs).toEqual({ captured: 0, replays: 0, error: null });
    expect(graphed.losses).toEqual(eager.losses);
    expect(graphed.norms).toEqual(eager.norms);
    expect(graphed.weights).toEqual(eager.weights);
    // The padded buckets change only the order of float32 sums against the CPU backend's natural shapes.
    const rel = graphed.losses.map((l, i) => Math.abs(l - onCpu.losses[i]!) / onCpu.losses[i]!);
    expect(Math.max(...rel)).toBeLessThan(2e-4);
    expect(graphed.losses[5]!).toBeLessThan(graphed.losses[0]!);
    cuda.destroy();
    cpu.destroy();
  }, 300_000);

  it('with LoRA dropout the capture fails: auto runs every step eagerly and says why; graph: true refuses', async () => {
    const cuda = createCudaBackend();
    const auto = await run(cuda, { dropout: 0.1, bucket: 'always' });
    const eager = await run(cuda, { dropout: 0.1, bucket: 'always', graph: false });
    expect(auto.result.graphs.captured).toBe(0);
    expect(auto.result.graphs.error).toMatch(/captur/);
    // The failed attempt's draws from the dropout generator are undone: the masks are the eager run's.
    expect(auto.losses).toEqual(eager.losses);
    expect(auto.weights).toEqual(eager.weights);
    await expect(run(cuda, { dropout: 0.1, graph: true })).rejects.toThrow(/train: capturing the step failed/);
    cuda.destroy();
  }, 300_000);
});
