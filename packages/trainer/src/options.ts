import type { NoDecayRule } from './adamw.js';
import { checkGraphMode, type GraphMode } from './graphs.js';
import type { ProgressOptions } from './progress.js';
import { SCHEDULE_KINDS, type ScheduleKind } from './schedule.js';
import type { GraphReport } from './step-runner.js';
import type { RunStore } from './store.js';
import type { Evaluation, TrainCommunicator, ValidationRecord } from './types.js';

export interface TrainOptions {
  /** Passes over the training set. */
  epochs: number;
  /**
   * Examples per optimizer update (Study A: 32) and process: with a `communicator` of N processes
   * an update sees N × batchSize. The last batch of an epoch may be smaller.
   */
  batchSize: number;
  /** Examples per forward/backward pass; gradients of ⌈batchSize / microBatchSize⌉ passes are accumulated. Default batchSize. */
  microBatchSize?: number;
  /** Peak learning rate. */
  lr: number;
  /** AdamW's decoupled weight decay. Default 0.01 (Study A). */
  weightDecay?: number;
  /** Default [0.9, 0.999]. */
  betas?: readonly [number, number];
  /** Default 1e-8. */
  eps?: number;
  /** Names that get no weight decay. Default `hfNoDecay` (biases and normalization weights, as the HF Trainer). */
  noDecay?: NoDecayRule;
  /** Default 'linear' (warm-up, then linear decay to 0). */
  schedule?: ScheduleKind;
  /** Warm-up length in optimizer steps; or give `warmupRatio` of all steps, or `warmupEpochs` (Study A: 1). Default 0. */
  warmupSteps?: number;
  warmupRatio?: number;
  warmupEpochs?: number;
  /** Clip the global gradient norm to this (PyTorch's clip_grad_norm_). Default 1.0 (the HF Trainer's); null turns it off. */
  maxGradNorm?: number | null;
  /** Seed of the data order (a Philox generator, checkpointed). Default 42. */
  seed?: number;
  /** Default true: higher scores are better. */
  greaterIsBetter?: boolean;
  /** Evaluate the untrained state first as the epoch-0 candidate (Study A). Default true. */
  evaluateUntrained?: boolean;
  /** Evaluate the test split with the best state at the end. Default true. */
  evaluateTest?: boolean;
  /** The run folder: log.csv, val-metrics.json, test-metrics.json, config.json, adapter/, checkpoints/. Without it nothing is written. */
  out?: RunStore;
  /** Also checkpoint every this many optimizer steps (checkpoints are always written after each epoch). Default 0: epochs only. */
  checkpointEverySteps?: number;
  /** Checkpoints kept on disk (newest). Default 1. */
  keepCheckpoints?: number;
  /**
   * Continue from the newest complete checkpoint in `out`, to the same final numbers as an
   * uninterrupted run. Starts from scratch when there is none. Without it, old checkpoints are removed.
   */
  resume?: boolean;
  /** Stops the run at the next step boundary, after writing a checkpoint. */
  signal?: AbortSignal;
  /** A training row in log.csv every this many steps. Default 10. */
  logEverySteps?: number;
  /** Progress bar / lines; false for silence. */
  progress?: ProgressOptions | false;
  /** Called after every optimizer update; a throw stops the run (as a crash would). */
  onStep?: (info: StepInfo) => void | Promise<void>;
  /** Called after every epoch's evaluation (epoch 0 for the untrained state). */
  onEpoch?: (info: EpochInfo) => void | Promise<void>;
  /** Extra settings recorded in config.json and checked on resume (a sweep's grid values). */
  config?: Record<string, unknown>;
  /**
   * Data-parallel training over several processes (`@peft/distributed`'s communicator; size 1 or
   * none: one process). Every process runs `train` with the same task, data and options. Each
   * update takes the next `batchSize × size` examples of the seeded order a single process would
   * use, rank r the r-th contiguous part (the last batch of an epoch split as evenly); the
   * gradients are summed over the processes with each micro-batch weighted by its share of the
   * global batch, so every rank applies the update one process with that batch would, clips by the
   * global norm and logs the global loss. Evaluation is split: the task gets the communicator
   * (`EvaluateOptions`). Only rank 0 writes `out` and shows progress; the others write nothing
   * (give them no `out`, or the same; it is not used). `onStep` and `onEpoch` are called on every
   * rank with the same values; a hook that throws must do so on every rank, or the others wait
   * until the communicator's time-out. On resume rank 0 reads its newest checkpoint and sends its
   * files to the others. A Ctrl-C on any rank stops every rank at the same step boundary.
   */
  communicator?: TrainCommunicator;
  /**
   * CUDA graphs: 'auto' (default) records each micro-batch shape's forward and backward, the
   * gradient norm and the update as graphs where the backend can capture (`captureGraph`) and the
   * task gives fixed-shape inputs (`TrainTask.stepInputs`), then replays them; where a capture
   * fails (dropout draws on the host) every step runs eagerly and `TrainResult.graphs.error` says
   * why. true: as 'auto', but a backend that cannot capture or a failed capture is an error.
   * false: always eager. The numbers are the same either way.
   */
  graph?: boolean | 'auto';
}

export interface StepInfo {
  epoch: number;
  /** 1-based update within the epoch. */
  stepInEpoch: number;
  stepsPerEpoch: number;
  /** Updates completed, this one included. */
  step: number;
  totalSteps: number;
  /** Learning rate this update used. */
  lr: number;
  /** Mean loss over the update's batch. */
  loss: number;
  /** Global gradient norm before clipping. */
  gradNorm: number;
  /** Factor the gradients were multiplied by (1 when not clipped). */
  clipCoefficient: number;
  tokens: number;
  tokensPerSecond: number;
  elapsedSeconds: number;
}

export interface EpochInfo {
  epoch: number;
  step: number;
  validation: Evaluation;
  /** Mean training loss of the epoch; null for epoch 0. */
  trainLoss: number | null;
  best: ValidationRecord;
  improved: boolean;
}

export interface TrainResult {
  /** The selected state (epoch 0: the untrained one); the trainable tensors hold it when `train` returns. */
  best: ValidationRecord;
  /** Test split with the best state; null when `evaluateTest` is false. */
  test: Evaluation | null;
  /** One record per evaluated epoch, epoch 0 first when the untrained state was evaluated. */
  validation: ValidationRecord[];
  steps: number;
  stepsPerEpoch: number;
  warmupSteps: number;
  /** The checkpoint the run continued from, or null. */
  resumedFrom: string | null;
  elapsedSeconds: number;
  /** Graphs captured and replayed in this run (0 and 0 on backends without graphs), and why none were, if a capture failed. */
  graphs: GraphReport;
}

/** The options with their defaults filled in and checked, and the run's length in steps. */
export interface Resolved {
  epochs: number;
  /** Per process. */
  batchSize: number;
  /** Processes (the communicator's size; 1 without one). */
  ranks: number;
  /** Examples per update over every process: batchSize × ranks. */
  globalBatchSize: number;
  microBatchSize: number;
  lr: number;
  weightDecay: number;
  betas: readonly [number, number];
  eps: number;
  schedule: ScheduleKind;
  warmupSteps: number;
  maxGradNorm: number | null;
  seed: number;
  greaterIsBetter: boolean;
  evaluateUntrained: boolean;
  evaluateTest: boolean;
  checkpointEverySteps: number;
  keepCheckpoints: number;
  logEverySteps: number;
  trainSize: number;
  stepsPerEpoch: number;
  totalSteps: number;
  graph: GraphMode;
}

function positiveInt(name: string, v: unknown): number {
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 1)
    throw new Error(`train: ${name} must be a positive integer, got ${String(v)}`);
  return v;
}

function nonNegative(name: string, v: unknown): number {
  if (typeof v !== 'number' || !Number.isFinite(v) || v < 0)
    throw new Error(`train: ${name} must be a finite number >= 0, got ${String(v)}`);
  return v;
}

/** Checks the options and fills in their defaults; errors name the option and its value. */
export function resolve(o: TrainOptions, trainSize: number): Resolved {
  const epochs = positiveInt('epochs', o.epochs);
  const batchSize = positiveInt('batchSize', o.batchSize);
  const microBatchSize = positiveInt('microBatchSize', o.microBatchSize ?? batchSize);
  if (microBatchSize > batchSize) throw new Error(`train: microBatchSize ${microBatchSize} is larger than batchSize ${batchSize}`);
  const lr = nonNegative('lr', o.lr);
  const schedule = o.schedule ?? 'linear';
  if (!SCHEDULE_KINDS.includes(schedule))
    throw new Error(`train: schedule "${schedule}" is unknown: use one of ${SCHEDULE_KINDS.join(', ')}`);
  if (!Number.isSafeInteger(trainSize) || trainSize < 1)
    throw new Error(`train: the task's trainSize must be a positive integer, got ${trainSize}`);
  const ranks = o.communicator?.size ?? 1;
  const globalBatchSize = batchSize * ranks;
  const stepsPerEpoch = Math.ceil(trainSize / globalBatchSize);
  const totalSteps = epochs * stepsPerEpoch;
  const given = (['warmupSteps', 'warmupRatio', 'warmupEpochs'] as const).filter((k) => o[k] !== undefined);
  if (given.length > 1) throw new Error(`train: give one of warmupSteps, warmupRatio, warmupEpochs, not ${given.join(' and ')}`);
  let warmupSteps = 0;
  if (o.warmupSteps !== undefined) {
    warmupSteps = nonNegative('warmupSteps', o.warmupSteps);
    if (!Number.isInteger(warmupSteps)) throw new Error(`train: warmupSteps must be an integer, got ${warmupSteps}`);
  } else if (o.warmupRatio !== undefined) {
    const r = nonNegative('warmupRatio', o.warmupRatio);
    if (r > 1) throw new Error(`train: warmupRatio ${r} must be in [0, 1]`);
    warmupSteps = Math.ceil(r * totalSteps); // transformers' get_warmup_steps
  } else if (o.warmupEpochs !== undefined) {
    warmupSteps = Math.ceil(nonNegative('warmupEpochs', o.warmupEpochs) * stepsPerEpoch);
  }
  const maxGradNorm = o.maxGradNorm === undefined ? 1 : o.maxGradNorm;
  if (maxGradNorm !== null && !(maxGradNorm > 0))
    throw new Error(`train: maxGradNorm must be > 0 (or null for no clipping), got ${maxGradNorm}`);
  const seed = o.seed ?? 42;
  if (!Number.isSafeInteger(seed) || seed < 0) throw new Error(`train: seed must be a non-negative integer, got ${seed}`);
  return {
    epochs,
    batchSize,
    ranks,
    globalBatchSize,
    microBatchSize,
    lr,
    weightDecay: nonNegative('weightDecay', o.weightDecay ?? 0.01),
    betas: o.betas ?? [0.9, 0.999],
    eps: nonNegative('eps', o.eps ?? 1e-8),
    schedule,
    warmupSteps,
    maxGradNorm,
    seed,
    greaterIsBetter: o.greaterIsBetter ?? true,
    evaluateUntrained: o.evaluateUntrained ?? true,
    evaluateTest: o.evaluateTest ?? true,
    checkpointEverySteps: o.checkpointEverySteps === undefined ? 0 : nonNegative('checkpointEverySteps', o.checkpointEverySteps),
    keepCheckpoints: positiveInt('keepCheckpoints', o.keepCheckpoints ?? 1),
    logEverySteps: positiveInt('logEverySteps', o.logEverySteps ?? 10),
    trainSize,
    stepsPerEpoch,
    totalSteps,
    graph: checkGraphMode('train', o.graph ?? 'auto'),
  };
}
