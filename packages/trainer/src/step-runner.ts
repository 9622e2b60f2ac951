import {
  type Backend,
  backward,
  cast,
  concat,
  encode,
  type Generator,
  keep,
  mul,
  noGrad,
  reshape,
  type Tensor,
  tensor,
  tidy,
  zeros,
} from '@peft/core';
import type { AdamW } from './adamw.js';
import { allReduceGradients } from './data-parallel.js';
import { GraphCache, type GraphMode } from './graphs.js';
import type { LossContext, StepInput, TrainCommunicator, TrainTask } from './types.js';
import { applyUpdate, applyUpdateAt, gradientScale } from './update.js';

/** What `train()` says about its graphs (`TrainResult.graphs`). */
export interface GraphReport {
  /** Graphs captured (one per micro-batch shape, one for the norm, one for the update). */
  captured: number;
  /** Graph launches after the capture. */
  replays: number;
  /** Why steps run eagerly on a backend that can capture graphs, or null. */
  error: string | null;
}

const FLAT = (n: number) => ({ shape: [n], strides: [1], offset: 0 });

/** `given`'s names, dtypes and shapes as one key, each input checked against its data. */
function inputKey(given: Record<string, StepInput>): string {
  const parts: string[] = [];
  for (const [name, s] of Object.entries(given)) {
    if (!s || !Array.isArray(s.shape) || s.shape.some((d) => !Number.isSafeInteger(d) || d < 1)) {
      throw new Error(`train: stepInputs "${name}" has shape ${JSON.stringify(s?.shape)}: use positive integers`);
    }
    const size = s.shape.reduce((a, b) => a * b, 1);
    if (!s.data || s.data.length !== size) {
      throw new Error(`train: stepInputs "${name}" has ${s.data?.length} values; its shape [${s.shape.join(', ')}] needs ${size}`);
    }
    parts.push(`${name}:${s.dtype}[${s.shape.join('x')}]`);
  }
  if (parts.length === 0) throw new Error('train: stepInputs returned no input: stepLoss needs at least one input tensor');
  return parts.join(' ');
}

/**
 * The device side of `train()`'s optimizer steps: each micro-batch's forward and backward adds its
 * share of the loss and its gradients into persistent accumulators, the norm and clipping factor
 * are computed from them into a persistent summary that the host reads and checks, and the update
 * (`update.ts`, the one `TrainingStep` applies) reads them and clears them. Each of these is a body
 * of `GraphCache`: on a backend that captures graphs, micro-batches given as fixed-shape inputs
 * (`TrainTask.stepInputs`) are recorded once per shape and replayed, and so are the norm and
 * the update; elsewhere the same bodies run eagerly.
 */
export class StepRunner<B> {
  readonly #task: TrainTask<B>;
  readonly #named: readonly (readonly [string, Tensor])[];
  readonly #optimizer: AdamW;
  readonly #backend: Backend;
  readonly #graphs: GraphCache;
  readonly #maxGradNorm: number | null;
  readonly #microBatchSize: number;
  readonly #acc: Tensor[];
  readonly #loss: Tensor;
  readonly #share: Tensor;
  readonly #summary: Tensor;
  readonly #coef: Tensor;
  readonly #hyper: Tensor;
  readonly #inputs = new Map<string, Record<string, Tensor>>();
  readonly #touched = new Set<number>();
  readonly #generators: Generator[];

  constructor(
    task: TrainTask<B>,
    named: readonly (readonly [string, Tensor])[],
    optimizer: AdamW,
    o: { graph: GraphMode; maxGradNorm: number | null; microBatchSize: number },
    generators: Record<string, Generator> = {},
  ) {
    this.#generators = Object.values(generators);
    this.#task = task;
    this.#named = named;
    this.#optimizer = optimizer;
    const backend = named[0]![1].backend;
    this.#backend = backend;
    this.#graphs = new GraphCache(backend, o.graph, 'train');
    this.#maxGradNorm = o.maxGradNorm;
    this.#microBatchSize = o.microBatchSize;
    const f32 = (n: number) => keep(zeros([n], { backend, dtype: 'float32' }));
    this.#acc = named.map(([, t]) => keep(zeros(t.shape, { backend: t.backend, dtype: t.dtype })));
    this.#loss = f32(1);
    this.#share = f32(1);
    this.#summary = f32(3);
    this.#coef = f32(1);
    this.#hyper = f32(3);
  }

  get report(): GraphReport {
    const { captures, replays } = this.#graphs.counts;
    return { captured: captures, replays, error: this.#graphs.error };
  }

  /**
   * One micro-batch: its loss (through `stepInputs` + `stepLoss` when the task has them, else
   * `loss`) times `share`, backward, and the loss and gradients added into the accumulators.
   */
  micro(batch: B, share: number, ctx: LossContext): void {
    const task = this.#task;
    this.#backend.write(this.#share.buffer('train'), Float32Array.of(share));
    const given =
      task.stepInputs && task.stepLoss
        ? task.stepInputs(batch, { fixed: this.#graphs.enabled, microBatchSize: this.#microBatchSize }, ctx)
        : null;
    if (!given) {
      this.#record(this.#body(() => task.loss(batch, ctx)));
      return;
    }
    const key = inputKey(given);
    if (!this.#graphs.enabled && !this.#graphs.has(`micro ${key}`)) {
      const inputs: Record<string, Tensor> = {};
      try {
        for (const [name, s] of Object.entries(given)) inputs[name] = tensor(s.data, s.shape, { backend: this.#backend, dtype: s.dtype });
        this.#record(this.#body(() => task.stepLoss!(inputs, ctx)));
      } finally {
        for (const t of Object.values(inputs)) t.dispose();
      }
      return;
    }
    const inputs = this.#keyedInputs(key, given);
    // A failed recording (dropout drawing on the host) took numbers from the task's generators: put them back.
    const states = this.#generators.map((g) => g.state());
    const { value } = this.#graphs.run(`micro ${key}`, () => this.#body(() => task.stepLoss!(inputs, ctx)), {
      undo: () => {
        this.#optimizer.zeroGrad();
        for (const [i, g] of this.#generators.entries()) g.setState(states[i]!);
      },
      onDrop: () => this.#dropInputs(key),
    });
    this.#record(value);
  }

  /** The persistent input tensors of one set of shapes (a graph reads them), with `given`'s values written in. */
  #keyedInputs(key: string, given: Record<string, StepInput>): Record<string, Tensor> {
    let inputs = this.#inputs.get(key);
    if (!inputs) {
      inputs = {};
      for (const [name, s] of Object.entries(given)) inputs[name] = keep(zeros(s.shape, { backend: this.#backend, dtype: s.dtype }));
      this.#inputs.set(key, inputs);
    }
    for (const [name, s] of Object.entries(given)) this.#backend.write(inputs[name]!.buffer('train'), encode(s.data, s.dtype));
    return inputs;
  }

  #dropInputs(key: string): void {
    for (const t of Object.values(this.#inputs.get(key) ?? {})) t.dispose();
    this.#inputs.delete(key);
  }

  #record(touched: readonly number[]): void {
    for (const i of touched) this.#touched.add(i);
  }

  /** Forward and backward of one micro-batch; returns the indices of the trainables that got a gradient. */
  #body(lossOf: () => Tensor): number[] {
    const backend = this.#backend;
    tidy(() => {
      const loss = lossOf();
      if (loss.size !== 1 || loss.dtype === 'int32')
        throw new Error(`train: the task's loss must be a float scalar, got ${loss.describe()}`);
      if (!loss.requiresGrad) {
        throw new Error(
          `train: the task's loss ${loss.describe()} does not depend on any trainable tensor: compute it from the tensors trainable() returns (with requiresGrad) and not under noGrad`,
        );
      }
      const l32 = loss.dtype === 'float32' ? loss : cast(loss, 'float32');
      const scaled = mul(reshape(l32, [1]), this.#share);
      backward(scaled);
      backend.addInto(this.#loss.buffer('train'), scaled.buffer('train'), FLAT(1));
    });
    const touched: number[] = [];
    this.#named.forEach(([, t], i) => {
      if (!t.grad) return;
      backend.addInto(this.#acc[i]!.buffer('train'), t.grad.buffer('train'), FLAT(t.size));
      touched.push(i);
    });
    this.#optimizer.zeroGrad();
    return touched;
  }

  /**
   * Over several processes: sums the accumulated loss and gradients of every rank in place, so that
   * each holds those of the global batch (a trainable counts as having a gradient when any rank gave it one).
   */
  async allReduce(comm: TrainCommunicator): Promise<void> {
    const [local] = await this.#loss.data();
    const had = this.#named.map((_, i) => this.#touched.has(i));
    const { loss, touched } = await allReduceGradients(comm, this.#acc, had, local!);
    this.#backend.write(this.#loss.buffer('train'), Float32Array.of(loss));
    touched.forEach((t, i) => {
      if (t) this.#touched.add(i);
    });
  }

  /** The step's loss, global gradient norm and clipping factor, computed on the device and read back. */
  async summarize(): Promise<[loss: number, gradNorm: number, coef: number]> {
    this.#graphs.run('norm', () =>
      noGrad(() =>
        tidy(() => {
          const { norm, coef } = gradientScale(this.#acc, this.#maxGradNorm, this.#backend);
          const summary = concat([this.#loss, norm, coef], 0);
          this.#backend.copy(this.#summary.buffer('train'), summary.buffer('train'), FLAT(3));
          this.#backend.copy(this.#coef.buffer('train'), coef.buffer('train'), FLAT(1));
        }),
      ),
    );
    const [loss, gradNorm, coef] = await this.#summary.data();
    return [loss!, gradNorm!, coef!];
  }

  /**
   * Applies AdamW with learning rate `lr` to every trainable that got a gradient this step, scaled
   * by the clipping factor `summarize` computed, then clears the accumulators. When every trainable
   * got one and all are at the same update number (every step after the first, as a rule) this is
   * one body with the learning rate and bias corrections read on the device (a graph once
   * captured); otherwise each trainable takes the scalars of its own update number.
   */
  update(lr: number): void {
    const optimizer = this.#optimizer;
    const counts = optimizer.counts();
    const steps = new Set(counts.values());
    if (this.#touched.size === this.#named.length && counts.size === this.#named.length && steps.size === 1) {
      const t = [...steps][0]! + 1;
      this.#backend.write(this.#hyper.buffer('train'), optimizer.hyper(lr, t));
      const { mode, value } = this.#graphs.run('update', () => this.#updateBody(), {
        undo: () => {
          optimizer.zeroGrad();
          optimizer.restoreCounts(counts);
        },
      });
      if (mode === 'replay') optimizer.advance(value);
    } else {
      try {
        this.#lendGradients();
        applyUpdateAt(optimizer, lr, this.#coef);
      } finally {
        optimizer.zeroGrad();
      }
      this.clear();
    }
    this.#touched.clear();
  }

  /** AdamW over the accumulated gradients with the device's scalars, then the accumulators zeroed. */
  #updateBody(): string[] {
    this.#lendGradients();
    let updated: string[];
    try {
      updated = applyUpdate(this.#optimizer, this.#hyper, this.#coef);
    } finally {
      this.#optimizer.zeroGrad();
    }
    this.#zero();
    return updated;
  }

  /** Each trainable that got a gradient this step sees its accumulator as `.grad` (a second handle on it). */
  #lendGradients(): void {
    this.#named.forEach(([, t], i) => {
      if (this.#touched.has(i)) t.grad = this.#acc[i]!.share();
    });
  }

  #zero(): void {
    for (const a of this.#acc) this.#backend.fill(a.buffer('train'), 0);
    this.#backend.fill(this.#loss.buffer('train'), 0);
  }

  /** Drops the step's accumulated loss and gradients (a step that stops before its update). */
  clear(): void {
    this.#optimizer.zeroGrad();
    this.#zero();
    this.#touched.clear();
  }

  /** Frees the graphs, their inputs and the accumulators. */
  dispose(): void {
    this.#graphs.dispose();
    for (const key of [...this.#inputs.keys()]) this.#dropInputs(key);
    for (const t of [...this.#acc, this.#loss, this.#share, this.#summary, this.#coef, this.#hyper]) t.dispose();
  }
}
