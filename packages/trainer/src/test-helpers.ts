// A small task for the tests: a 3-class problem of Gaussian blobs in 8 dimensions, an MLP with
// dropout (so resuming must restore a generator), macro-F1 as the score.
import {
  add,
  argmax,
  type Backend,
  crossEntropy,
  Dropout,
  type DType,
  Generator,
  Linear,
  noGrad,
  philoxNormal,
  relu,
  scalar,
  type Tensor,
  tensor,
  tidy,
} from '@peft/core';
import type { Evaluation, LossContext, Split, TrainTask } from './types.js';

export interface Blobs {
  x: Float32Array;
  y: number[];
}

const DIM = 8;
const CLASSES = 3;

/** n points per split, class centres 1.2 apart on random axes, unit noise: hard enough that training matters. */
export function makeBlobs(n: number, seed: number): Blobs {
  const centres = philoxNormal(1000, 0, CLASSES * DIM, 0, 0.8);
  const noise = philoxNormal(seed, 0, n * DIM);
  const x = new Float32Array(n * DIM);
  const y: number[] = [];
  for (let i = 0; i < n; i++) {
    const c = i % CLASSES;
    y.push(c);
    for (let d = 0; d < DIM; d++) x[i * DIM + d] = centres[c * DIM + d]! + noise[i * DIM + d]!;
  }
  return { x, y };
}

/** Macro precision/recall/F1 over all classes with zero_division = 0, and accuracy (scikit-learn semantics). */
export function classificationMetrics(yTrue: readonly number[], yPred: ArrayLike<number>, classes = CLASSES) {
  let correct = 0;
  let p = 0;
  let r = 0;
  let f = 0;
  for (let c = 0; c < classes; c++) {
    let tp = 0;
    let fp = 0;
    let fn = 0;
    yTrue.forEach((t, i) => {
      const q = yPred[i];
      if (q === c && t === c) tp++;
      else if (q === c) fp++;
      else if (t === c) fn++;
    });
    const prec = tp + fp ? tp / (tp + fp) : 0;
    const rec = tp + fn ? tp / (tp + fn) : 0;
    p += prec;
    r += rec;
    f += prec + rec ? (2 * prec * rec) / (prec + rec) : 0;
  }
  yTrue.forEach((t, i) => {
    if (yPred[i] === t) correct++;
  });
  return { accuracy: correct / yTrue.length, precision: p / classes, recall: r / classes, f1: f / classes };
}

export interface BlobTaskOptions {
  backend: Backend;
  trainSize?: number;
  hidden?: number;
  /** Seed of the initial weights. */
  initSeed?: number;
  dropout?: number;
  /** Return a NaN loss at this optimizer step (0-based count of completed updates). */
  nanAtStep?: number;
  /** Freeze the first layer, stored in this dtype (a bfloat16 base with a float32 head, as Study A). */
  frozenDtype?: DType;
}

export interface BatchData {
  x: Float32Array;
  y: number[];
}

export class BlobTask implements TrainTask<BatchData> {
  readonly trainSize: number;
  readonly fc1: Linear;
  readonly fc2: Linear;
  readonly drop: Dropout;
  readonly dropoutGenerator = new Generator(7);
  readonly data: Record<'train' | Split, Blobs>;
  readonly #backend: Backend;
  readonly #nanAt: number | undefined;
  readonly #frozen: boolean;
  batchesSeen: number[][] = [];

  constructor(opts: BlobTaskOptions) {
    this.#backend = opts.backend;
    this.trainSize = opts.trainSize ?? 96;
    const gen = new Generator(opts.initSeed ?? 3);
    const hidden = opts.hidden ?? 16;
    this.fc1 = new Linear(DIM, hidden, { backend: opts.backend, generator: gen, dtype: opts.frozenDtype });
    this.#frozen = opts.frozenDtype !== undefined;
    if (this.#frozen) this.fc1.freeze();
    this.fc2 = new Linear(hidden, CLASSES, { backend: opts.backend, generator: gen });
    this.drop = new Dropout(opts.dropout ?? 0.1, this.dropoutGenerator);
    this.data = { train: makeBlobs(this.trainSize, 11), validation: makeBlobs(60, 12), test: makeBlobs(60, 13) };
    this.#nanAt = opts.nanAtStep;
  }

  *trainable(): Iterable<[string, Tensor]> {
    if (!this.#frozen) yield* this.fc1.namedParameters('fc1');
    yield* this.fc2.namedParameters('fc2');
  }

  batch(indices: readonly number[]): BatchData {
    this.batchesSeen.push([...indices]);
    const x = new Float32Array(indices.length * DIM);
    indices.forEach((i, k) => {
      x.set(this.data.train.x.subarray(i * DIM, (i + 1) * DIM), k * DIM);
    });
    return { x, y: indices.map((i) => this.data.train.y[i]!) };
  }

  logits(x: Float32Array, rows: number): Tensor {
    const input = tensor(x, [rows, DIM], { backend: this.#backend });
    return this.fc2.forward(this.drop.forward(relu(this.fc1.forward(input))));
  }

  loss(b: BatchData, ctx: LossContext): Tensor {
    const loss = crossEntropy(this.logits(b.x, b.y.length), b.y);
    if (this.#nanAt === ctx.step) return add(loss, scalar(Number.NaN, { backend: this.#backend }));
    return loss;
  }

  setTraining(training: boolean): void {
    this.fc1.train(training);
    this.fc2.train(training);
    this.drop.train(training);
  }

  generators(): Record<string, Generator> {
    return { dropout: this.dropoutGenerator };
  }

  async predict(split: Split): Promise<Int32Array> {
    const d = this.data[split];
    const pred = noGrad(() => tidy(() => argmax(this.logits(d.x, d.y.length))));
    try {
      return (await pred.data()) as Int32Array;
    } finally {
      pred.dispose();
    }
  }

  async evaluate(split: Split): Promise<Evaluation> {
    const m = classificationMetrics(this.data[split].y, await this.predict(split));
    return { score: m.f1, metrics: m };
  }

  describe(): Record<string, unknown> {
    return { task: 'blobs', classes: CLASSES };
  }

  dispose(): void {
    this.fc1.dispose();
    this.fc2.dispose();
  }
}

/** Raw bits of the task's trainable tensors, for bit-for-bit comparisons. */
export async function rawState(task: TrainTask): Promise<Record<string, number[]>> {
  const out: Record<string, number[]> = {};
  for (const [name, t] of task.trainable()) out[name] = Array.from(new Uint32Array((await t.raw()).slice().buffer));
  return out;
}
