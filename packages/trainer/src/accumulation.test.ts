import { createCpuBackend } from '@peft/backend-cpu';
import { afterAll, describe, expect, it } from 'vitest';
import { BlobTask } from './test-helpers.js';
import { train } from './trainer.js';

const backend = createCpuBackend({ threads: 1 });
afterAll(() => backend.destroy());

async function run(trainSize: number, batchSize: number, microBatchSize: number) {
  const task = new BlobTask({ backend, trainSize, dropout: 0 });
  const seen: number[] = [];
  const values: number[] = [];
  await train(task, {
    epochs: 2,
    batchSize,
    microBatchSize,
    lr: 0.02,
    maxGradNorm: 0.5,
    evaluateUntrained: false,
    evaluateTest: false,
    progress: false,
    // The tensors after the last update (train() itself leaves the best epoch's state in them).
    onStep: async (s) => {
      if (s.step === s.totalSteps) for (const [, t] of task.trainable()) values.push(...(await t.data()));
    },
  });
  for (const b of task.batchesSeen) seen.push(b.length);
  task.dispose();
  return { values, sizes: seen };
}

describe('gradient accumulation', () => {
  it('two micro-batches of 4 update exactly like one batch of 8 (mean loss), within 1e-6', async () => {
    const whole = await run(32, 8, 8);
    const split = await run(32, 8, 4);
    expect(whole.values.length).toBe(16 * 8 + 16 + 3 * 16 + 3);
    expect(whole.sizes.every((n) => n === 8)).toBe(true);
    expect(split.sizes.every((n) => n === 4)).toBe(true);
    const diff = Math.max(...whole.values.map((v, i) => Math.abs(v - split.values[i]!)));
    expect(diff).toBeLessThan(1e-6);
  });

  it('weights uneven micro-batches by their size (20 examples, batch 8 in micro-batches of 3)', async () => {
    const whole = await run(20, 8, 8);
    const split = await run(20, 8, 3);
    // Per epoch: batches 8, 8, 4 → micro-batches 3, 3, 2 | 3, 3, 2 | 3, 1.
    expect(split.sizes.slice(0, 8)).toEqual([3, 3, 2, 3, 3, 2, 3, 1]);
    const diff = Math.max(...whole.values.map((v, i) => Math.abs(v - split.values[i]!)));
    expect(diff).toBeLessThan(1e-6);
  });
});
