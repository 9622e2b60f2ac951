import type { DType, FileSink, Generator, Tensor } from '@peft/core';

export type Split = 'validation' | 'test';

/**
 * What a data-parallel run needs from its peers (the trainer's view of a communicator; the
 * `MpiCommunicator` and `LocalCommunicator` of `@peft/distributed` have this shape). Every rank
 * must call the same collectives in the same order; a collective that gets no answer rejects
 * (a rank died or stopped) and the run stops with that error.
 */
export interface TrainCommunicator {
  /** This process's rank, 0..size-1; rank 0 writes the run folder. */
  readonly rank: number;
  /** Processes in the job. */
  readonly size: number;
  /** Combines `data` of every rank elementwise, in place (same length on every rank). */
  allReduce(data: Float32Array, op?: 'sum' | 'mean'): Promise<Float32Array>;
  /** Copies root's `data` into every other rank's `data` (same length on every rank). */
  broadcast<T extends Uint8Array | Float32Array>(data: T, root?: number): Promise<T>;
  /** Resolves once every rank has called it. */
  barrier(): Promise<void>;
  /** Every rank's JSON value, in rank order, on every rank. */
  allGatherObjects<T>(value: T): Promise<T[]>;
}

/** What the trainer passes to `TrainTask.evaluate`. */
export interface EvaluateOptions {
  /** Check it between batches (`signal.throwIfAborted()`), so that Ctrl-C stops a long evaluation within one batch. */
  signal?: AbortSignal;
  /**
   * Given when the run is data-parallel over several processes (size > 1): evaluate this rank's
   * share of the split only (examples i with i % size === rank, or a contiguous part), gather the
   * per-example predictions of every rank with `allGatherObjects` and compute the metrics from
   * all of them, so that every rank returns the same Evaluation (the one a single process
   * would). Every rank calls `evaluate` at the same point of the run.
   */
  communicator?: TrainCommunicator;
}

/** What `evaluate` reports: the score the trainer selects by, and whatever else is worth keeping. */
export interface Evaluation {
  /** Selection score (macro-F1 for classification, entity F1 for NER). Higher is better unless `greaterIsBetter: false`. */
  score: number;
  /** JSON values written to val-metrics.json / test-metrics.json; numbers here become sweep table columns. */
  metrics: Record<string, unknown>;
}

/** The validation result of one epoch (epoch 0: the untrained state). */
export interface ValidationRecord {
  epoch: number;
  /** Optimizer updates completed. */
  step: number;
  score: number;
  metrics: Record<string, unknown>;
}

export interface LossContext {
  /** 1-based epoch. */
  epoch: number;
  /** Optimizer updates completed before this one. */
  step: number;
  /** Index of the micro-batch within the optimizer step. */
  microStep: number;
}

/** One fixed-shape input of a micro-batch (`TrainTask.stepInputs`): host values for a device tensor of this shape. */
export interface StepInput {
  shape: readonly number[];
  dtype: DType;
  /** The shape's element count, row-major. */
  data: ArrayLike<number>;
}

/** How `TrainTask.stepInputs` should shape a micro-batch. */
export interface StepShapes {
  /**
   * True when the backend captures graphs (the CUDA backend): every distinct set of shapes is
   * captured once and replayed, so use few of them (buckets: pad the sequence axis up to one of a
   * few lengths, the batch axis up to `microBatchSize` with rows that count for nothing). False:
   * the batch's own shapes, with no padding beyond it.
   */
  fixed: boolean;
  /** The run's micro-batch size. */
  microBatchSize: number;
}

/**
 * What the trainer needs from a task; it knows nothing else about it (classification, NER by
 * generation, anything with a scalar loss and a validation score).
 */
export interface TrainTask<B = unknown> {
  /**
   * The tensors to optimise with their names (LoRA weights, the head). Leaves with
   * `requiresGrad`; the names pick weight decay (see `noDecay`) and key checkpoints.
   */
  trainable(): Iterable<readonly [string, Tensor]>;
  /** Number of training examples; each epoch the trainer shuffles 0…trainSize−1 and asks for batches by index. */
  readonly trainSize: number;
  /** One micro-batch's host data (token ids, labels) for these example indices; may be async. Make tensors in `loss`. */
  batch(indices: readonly number[]): B | Promise<B>;
  /**
   * The mean loss over the micro-batch, a scalar recorded by autograd. Runs inside the step's
   * `tidy`: everything it creates is freed after backward.
   */
  loss(batch: B, ctx: LossContext): Tensor;
  /**
   * The micro-batch's share of the optimizer batch's mean. Default: its number of examples, so that
   * accumulated micro-batches give the mean over the whole batch. Give the token count for a per-token mean.
   */
  weight?(batch: B): number;
  /**
   * Optional, with `stepLoss`: the micro-batch as fixed-shape host arrays, by input name. When a
   * task has both, the trainer writes these into device tensors and calls `stepLoss` instead of
   * `loss` (on every backend), and on a backend that captures graphs it records each micro-batch
   * shape's forward and backward once and replays it. Null: this micro-batch goes through `loss`.
   * Whatever else the loss depends on that changes between calls (the step's dropout keys:
   * `exampleStreamKeys(seed, ctx.step, …)`) belongs here too.
   */
  stepInputs?(batch: B, shapes: StepShapes, ctx: LossContext): Record<string, StepInput> | null;
  /**
   * The value `loss(batch, ctx)` gives (the same mean, so the same gradients), computed from the
   * tensors of `stepInputs(batch)` alone: a replayed graph repeats everything else its capture saw.
   * Work that cannot be replayed (random numbers drawn on the host's counter: dropout in training
   * mode) makes the capture fail; the trainer then runs every step eagerly and says why
   * (`TrainResult.graphs`).
   */
  stepLoss?(inputs: Readonly<Record<string, Tensor>>, ctx: LossContext): Tensor;
  /** Tokens in the micro-batch, for tokens/s. Default: its number of examples. */
  tokens?(batch: B): number;
  /**
   * Scores a split with the current values of the trainable tensors. Run the work under `noGrad` and
   * `tidy`. When `options.signal` is given, check it between batches (`signal.throwIfAborted()`), so
   * that Ctrl-C during a long evaluation stops within one batch. When `options.communicator` is
   * given, score this rank's share and gather the rest (see `EvaluateOptions`).
   */
  evaluate(split: Split, options?: EvaluateOptions): Promise<Evaluation>;
  /** Training mode (dropout) on before each epoch's steps, off before each evaluation. */
  setTraining?(training: boolean): void;
  /** Generators whose state a resume must restore (dropout masks), by name. */
  generators?(): Record<string, Generator>;
  /**
   * Writes the result (the best state is loaded) in its published form, e.g.
   * `saveAdapterTo(peft, sink)` for a PEFT adapter plus the head's weights. Default: the trainable
   * tensors as `trainable.safetensors`.
   */
  saveArtifacts?(sink: FileSink): Promise<void>;
  /** Recorded in config.json (model, template, rank, …). */
  describe?(): Record<string, unknown>;
}
