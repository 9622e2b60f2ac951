import { createCpuBackend } from '@peft/backend-cpu';
import { afterAll, describe, expect, it } from 'vitest';
import { learningRate, scheduleFactor } from './schedule.js';
import { BlobTask } from './test-helpers.js';
import { train } from './trainer.js';

// transformers.optimization, written out as in its source:
//   linear:  step < warmup ? step / max(1, warmup) : max(0, (total - step) / max(1, total - warmup))
//   cosine:  step < warmup ? step / max(1, warmup) : max(0, 0.5 * (1 + cos(pi * num_cycles * 2 * progress)))
//            with progress = (step - warmup) / max(1, total - warmup), num_cycles = 0.5
//   constant_with_warmup: step < warmup ? step / max(1, warmup) : 1
describe('schedules equal transformers’ lr_lambda', () => {
  const sched = { warmupSteps: 10, totalSteps: 100 };
  it('linear warm-up then linear decay to 0', () => {
    const f = (s: number) => scheduleFactor(s, { kind: 'linear', ...sched });
    expect([0, 1, 5, 10, 11, 55, 99, 100, 120].map(f)).toEqual([0, 0.1, 0.5, 1, 89 / 90, 0.5, 1 / 90, 0, 0]);
    expect(learningRate(3e-4, 5, { kind: 'linear', ...sched })).toBe(1.5e-4);
    // No warm-up: starts at the peak.
    expect(scheduleFactor(0, { kind: 'linear', warmupSteps: 0, totalSteps: 4 })).toBe(1);
    expect(scheduleFactor(3, { kind: 'linear', warmupSteps: 0, totalSteps: 4 })).toBe(0.25);
  });
  it('cosine', () => {
    const f = (s: number) => scheduleFactor(s, { kind: 'cosine', ...sched });
    expect(f(5)).toBe(0.5);
    expect(f(10)).toBe(1);
    expect(f(55)).toBeCloseTo(0.5, 15);
    expect(f(40)).toBeCloseTo(0.5 * (1 + Math.cos(Math.PI * (30 / 90))), 15);
    expect(f(40)).toBeCloseTo(0.75, 15);
    expect(f(100)).toBe(0);
    expect(scheduleFactor(100, { kind: 'cosine', ...sched, numCycles: 1 })).toBeCloseTo(1, 15);
  });
  it('constant and constant_with_warmup', () => {
    expect([0, 3, 10, 50].map((s) => scheduleFactor(s, { kind: 'constant_with_warmup', ...sched }))).toEqual([0, 0.3, 1, 1]);
    expect([0, 3, 10, 50].map((s) => scheduleFactor(s, { kind: 'constant', ...sched }))).toEqual([1, 1, 1, 1]);
  });

  it('the trainer uses lr_lambda(updates done) for each update, as the HF Trainer (the first warm-up update has lr 0)', async () => {
    const backend = createCpuBackend({ threads: 1 });
    afterAll(() => backend.destroy());
    const task = new BlobTask({ backend, trainSize: 40 });
    const lrs: number[] = [];
    // 40 examples, batch 8 → 5 steps per epoch; 1 warm-up epoch of 3 → warm-up 5 of 15 steps.
    const r = await train(task, {
      epochs: 3,
      batchSize: 8,
      lr: 1e-3,
      warmupEpochs: 1,
      progress: false,
      evaluateTest: false,
      onStep: (s) => {
        lrs.push(s.lr);
      },
    });
    expect(r.warmupSteps).toBe(5);
    const expected = Array.from({ length: 15 }, (_, s) => 1e-3 * (s < 5 ? s / 5 : Math.max(0, (15 - s) / 10)));
    expect(lrs).toEqual(expected);
    task.dispose();
  });
});
