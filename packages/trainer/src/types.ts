import type { FileSink, Generator, Tensor } from '@peft/core';

export type Split = 'validation' | 'test';

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
  /** Tokens in the micro-batch, for tokens/s. Default: its number of examples. */
  tokens?(batch: B): number;
  /**
   * Scores a split with the current values of the trainable tensors. Run the work under `noGrad` and
   * `tidy`. When `options.signal` is given, check it between batches (`signal.throwIfAborted()`), so
   * that Ctrl-C during a long evaluation stops within one batch.
   */
  evaluate(split: Split, options?: { signal?: AbortSignal }): Promise<Evaluation>;
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
