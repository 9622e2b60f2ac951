// A TrainTask for `train()` with fixed-shape step inputs (TrainTask.stepInputs / stepLoss): the
// tiny Llama with LoRA on every projection, learning next-token prediction on 12 seeded rows of
// 3–8 tokens. With `shapes.fixed` (a backend that captures graphs) each micro-batch is padded to
// [microBatchSize, 8], so every step replays one graph; otherwise to its own longest row. Used
// to show that `train()`'s captured steps give the eager steps' numbers.
import { join } from 'node:path';
import { type Backend, crossEntropy, Generator, getPeftModel, loraConfig, mul, reshape, type Tensor, tensor } from '@peft/core';
import { loadModel } from '@peft/models/node';
import type { Evaluation, StepInput, StepShapes, TrainTask } from '@peft/trainer';
import { findFixtures } from './toy.js';

const ROWS = 12;
const BUCKET = 8;

/** Row i: 3–8 token ids from a seeded LCG in [4, vocab). */
function rows(vocab: number): number[][] {
  let s = 4242;
  return Array.from({ length: ROWS }, (_, i) => {
    const n = 3 + ((i * 5) % 6);
    return Array.from({ length: n }, () => {
      s = (s * 1103515245 + 12345) % 2147483648;
      return 4 + (s % (vocab - 4));
    });
  });
}

/** ids, positions, next-token targets (−100 where none) and 1 / number of targets, for `rows` padded to [b, t]. */
function inputs(batch: readonly (readonly number[])[], b: number, t: number): Record<string, StepInput> {
  const ids = new Int32Array(b * t);
  const positions = new Int32Array(b * t).map((_, j) => j % t);
  const targets = new Int32Array(b * t).fill(-100);
  let count = 0;
  batch.forEach((row, r) => {
    row.forEach((id, j) => {
      ids[r * t + j] = id;
      if (j + 1 < row.length) {
        targets[r * t + j] = row[j + 1]!;
        count++;
      }
    });
  });
  return {
    ids: { shape: [b, t], dtype: 'int32', data: ids },
    positions: { shape: [b, t], dtype: 'int32', data: positions },
    targets: { shape: [b * t], dtype: 'int32', data: targets },
    invCount: { shape: [1], dtype: 'float32', data: [1 / count] },
  };
}

/**
 * The task. `steps: false` leaves out stepInputs / stepLoss (the loss is made from host arrays by
 * `loss`), for comparing the two paths. Dropout `dropout` (0: none, so every step can be captured).
 * `bucket: 'always'` pads to the bucket on every backend, so that an eager run does the same sums.
 */
export async function graphTask(
  backend: Backend,
  o: { steps?: boolean; dropout?: number; bucket?: 'when-fixed' | 'always'; fixtures?: string } = {},
): Promise<TrainTask<number[][]> & { dispose(): void; weights(): Promise<Float32Array[]> }> {
  const causal = await loadModel(join(o.fixtures ?? findFixtures(), 'tiny-llama'), { backend, dtype: 'float32' });
  const targetModules = ['q_proj', 'k_proj', 'v_proj', 'o_proj', 'gate_proj', 'up_proj', 'down_proj'];
  const generator = new Generator(3);
  const peft = getPeftModel(causal, loraConfig({ r: 4, loraAlpha: 8, loraDropout: o.dropout ?? 0, targetModules, taskType: 'CAUSAL_LM' }), {
    generator,
  });
  const vocab = causal.config.vocabSize;
  const data = rows(vocab);
  const trainable = [...peft.namedParameters()].filter(([, t]) => t.requiresGrad) as [string, Tensor][];
  const stepLoss = (t: Readonly<Record<string, Tensor>>): Tensor => {
    const { logits } = causal.forward({ inputIds: t.ids!, positionIds: t.positions! });
    const sum = crossEntropy(reshape(logits, [t.targets!.size, vocab]), t.targets!, { reduction: 'sum', ignoreIndex: -100 });
    return mul(sum, t.invCount!);
  };
  const task: TrainTask<number[][]> & { dispose(): void; weights(): Promise<Float32Array[]> } = {
    trainSize: ROWS,
    trainable: () => trainable,
    batch: (indices) => indices.map((i) => data[i]!),
    loss(batch) {
      const t = Math.max(...batch.map((r) => r.length));
      const given = inputs(batch, batch.length, t);
      const made: Record<string, Tensor> = {};
      for (const [name, s] of Object.entries(given)) made[name] = tensor(s.data, s.shape, { backend, dtype: s.dtype });
      return stepLoss(made);
    },
    tokens: (batch) => batch.reduce((n, r) => n + r.length, 0),
    setTraining: (training) => peft.train(training),
    generators: () => ({ dropout: generator }),
    async evaluate(): Promise<Evaluation> {
      return { score: 0, metrics: {} };
    },
    dispose: () => peft.dispose(),
    weights: async () => Promise.all(trainable.map(async ([, t]) => Float32Array.from(await t.data()))),
  };
  if (o.steps !== false) {
    task.stepInputs = (batch: number[][], shapes: StepShapes) =>
      shapes.fixed || o.bucket === 'always'
        ? inputs(batch, shapes.microBatchSize, BUCKET)
        : inputs(batch, batch.length, Math.max(...batch.map((r) => r.length)));
    task.stepLoss = (t) => stepLoss(t);
  }
  return task;
}
