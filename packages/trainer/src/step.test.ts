import { createCpuBackend } from '@peft/backend-cpu';
import { backward, crossEntropy, Generator, Linear, relu, type Tensor, tensor, tidy } from '@peft/core';
import { afterAll, describe, expect, it } from 'vitest';
import { AdamW } from './adamw.js';
import { clipCoefficient, squaredNorm } from './clip.js';
import { TrainingStep } from './step.js';
import { makeBlobs } from './test-helpers.js';

const backend = createCpuBackend({ threads: 1 });
afterAll(() => backend.destroy());

const B = 12;

function mlp(seed: number) {
  const g = new Generator(seed);
  const fc1 = new Linear(8, 16, { backend, generator: g });
  const fc2 = new Linear(16, 3, { backend, generator: g });
  const forward = (x: Tensor) => fc2.forward(relu(fc1.forward(x)));
  const params: [string, Tensor][] = [
    ['fc1.weight', fc1.weight],
    ['fc1.bias', fc1.bias!],
    ['fc2.weight', fc2.weight],
    ['fc2.bias', fc2.bias!],
  ];
  return {
    forward,
    params,
    dispose: () => {
      fc1.dispose();
      fc2.dispose();
    },
  };
}

/** Batch i of the blobs: x [B, 8] and y [B]. */
function batchOf(i: number): { x: Float32Array; y: Int32Array } {
  const { x, y } = makeBlobs(B, 100 + i);
  return { x, y: Int32Array.from(y) };
}

const LRS = [0.05, 0.2, 0.2, 0.1, 0.02, 0.3];

describe('TrainingStep', () => {
  it('runs the same updates as forward, backward, clip_grad_norm_ and AdamW.step on the host', async () => {
    for (const maxGradNorm of [0.5, null]) {
      const ref = mlp(3);
      const ours = mlp(3);
      const refOpt = new AdamW(ref.params, { weightDecay: 0.01 });
      const opt = new AdamW(ours.params, { weightDecay: 0.01 });
      const step = new TrainingStep({
        backend,
        optimizer: opt,
        maxGradNorm,
        inputs: { x: { shape: [B, 8], dtype: 'float32' }, y: { shape: [B], dtype: 'int32' } },
        loss: ({ x, y }) => crossEntropy(ours.forward(x), y, { count: B }),
      });
      let clipped = 0;
      for (let i = 0; i < LRS.length; i++) {
        const { x, y } = batchOf(i);
        // The reference: the trainer's eager path, clipping factor computed on the host in float64.
        const xt = tensor(x, [B, 8], { backend });
        const loss = tidy(() => crossEntropy(ref.forward(xt), Array.from(y)));
        backward(loss);
        const sq = squaredNorm(ref.params.map(([, t]) => t.grad!))!;
        const norm = Math.sqrt((await sq.item()) as number);
        sq.dispose();
        const coef = clipCoefficient(norm, maxGradNorm);
        refOpt.step(LRS[i]!, coef);
        refOpt.zeroGrad();
        const refLoss = await loss.item();
        for (const t of [xt, loss]) t.dispose();

        const r = await step.run({ x, y }, LRS[i]!);
        expect(r.mode).toBe('eager'); // the CPU backend cannot capture graphs
        expect(r.step).toBe(i + 1);
        expect(r.loss).toBeCloseTo(refLoss, 5);
        expect(r.gradNorm).toBeCloseTo(norm, 5);
        expect(r.clipCoefficient).toBeCloseTo(coef, 5);
        if (coef < 1) clipped++;
      }
      if (maxGradNorm !== null) expect(clipped).toBeGreaterThan(0); // the clipping branch was exercised
      for (let k = 0; k < ref.params.length; k++) {
        const a = (await ref.params[k]![1].raw()) as Float32Array;
        const b = (await ours.params[k]![1].raw()) as Float32Array;
        for (let j = 0; j < a.length; j++) expect(b[j]).toBeCloseTo(a[j]!, 5);
        expect(opt.stepsOf(ref.params[k]![0])).toBe(LRS.length);
      }
      step.dispose();
      for (const o of [refOpt, opt]) o.dispose();
      ref.dispose();
      ours.dispose();
    }
  });

  it('names what is wrong with its inputs, options and loss', async () => {
    const m = mlp(1);
    const opt = new AdamW(m.params);
    const mk = (o: Partial<ConstructorParameters<typeof TrainingStep<'x' | 'y'>>[0]> = {}) =>
      new TrainingStep({
        backend,
        optimizer: opt,
        inputs: { x: { shape: [B, 8], dtype: 'float32' }, y: { shape: [B], dtype: 'int32' } },
        loss: ({ x, y }) => crossEntropy(m.forward(x), y, { count: B }),
        ...o,
      });
    expect(() => mk({ graph: true })).toThrow(/graph: true, but the cpu backend cannot capture graphs/);
    expect(() => mk({ maxGradNorm: 0 })).toThrow(/maxGradNorm must be a finite number > 0/);
    expect(() => mk({ inputs: { x: { shape: [B, 0], dtype: 'float32' } } as never })).toThrow(/input "x" has shape \[12,0\]/);
    const step = mk();
    const { x, y } = batchOf(0);
    await expect(step.run({ x: x.subarray(1), y }, 0.1)).rejects.toThrow(/input "x" has 95 values; its shape \[12, 8\] needs 96/);
    await expect(step.run({ x } as never, 0.1)).rejects.toThrow(/input "y" is missing/);
    await expect(step.run({ x, y, z: [1] } as never, 0.1)).rejects.toThrow(/"z" is not one of the inputs \(x, y\)/);
    await expect(step.run({ x, y }, -1)).rejects.toThrow(/learning rate -1/);
    step.dispose();
    const vector = mk({ loss: ({ x }) => m.forward(x) });
    await expect(vector.run({ x, y }, 0.1)).rejects.toThrow(/the loss must be one float value, got .*\[12, 3\]/);
    vector.dispose();
    await expect(step.run({ x, y }, 0.1)).rejects.toThrow(/disposed/);
    opt.dispose();
    m.dispose();
  });
});
