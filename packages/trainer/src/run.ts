import { Generator, type GeneratorState, type Tensor } from '@peft/core';
import { AdamW } from './adamw.js';
import type { RunCounters } from './checkpoint.js';
import { checkCommunicator } from './data-parallel.js';
import type { LogRow } from './log.js';
import { type Resolved, resolve, type TrainOptions } from './options.js';
import { Progress } from './progress.js';
import type { ScheduleOptions } from './schedule.js';
import type { HostState } from './state.js';
import { StepRunner } from './step-runner.js';
import type { RunStore } from './store.js';
import type { TrainTask, ValidationRecord } from './types.js';

/** The run's position and history: everything a checkpoint holds and a resume restores. */
export interface RunState {
  /** Optimizer updates completed. */
  step: number;
  epochsDone: number;
  /** Updates completed in the current epoch. */
  stepInEpoch: number;
  /** The data generator's state at the start of the current epoch (its order is drawn from it). */
  epochStartRng: GeneratorState;
  best: ValidationRecord | null;
  /** The best state's tensors on the host; null exactly when `best` is. */
  bestState: HostState | null;
  validation: ValidationRecord[];
  log: LogRow[];
  counters: RunCounters;
}

/** Where the run's checkpoints are: the one it continued from and the newest it wrote. */
export interface CheckpointMarks {
  resumedFrom: string | null;
  lastCheckpoint: string | null;
  /** The step of the newest checkpoint, −1 before there is one. */
  lastCheckpointStep: number;
}

/** This process's pace, for tokens/s and the ETA; a resumed run starts it afresh. */
export interface Pace {
  /** performance.now() in seconds when the run started, and the elapsed seconds of the run it continues. */
  started: number;
  elapsedBase: number;
  tokens: number;
  seconds: number;
  steps: number;
}

/** What the parts of `train` share: the task, the resolved options, the optimizer, and the run's state. */
export interface Run<B> {
  readonly task: TrainTask<B>;
  readonly options: TrainOptions;
  readonly o: Resolved;
  readonly named: readonly [string, Tensor][];
  readonly optimizer: AdamW;
  /** The device side of the optimizer steps: accumulators, graphs. */
  readonly steps: StepRunner<B>;
  readonly sched: ScheduleOptions;
  readonly out: RunStore | undefined;
  readonly progress: Progress | null;
  /** The task's generators (dropout), checkpointed by name. */
  readonly generators: Record<string, Generator>;
  /** The generator of the data order. */
  readonly dataRng: Generator;
  /** The settings that decide the numbers, recorded in each checkpoint and compared on resume. */
  readonly fingerprint: Record<string, unknown>;
  readonly state: RunState;
  readonly marks: CheckpointMarks;
  readonly pace: Pace;
}

export const now = (): number => performance.now() / 1000;

/** Seconds the run has taken, across resumes. */
export function elapsed(run: Run<unknown>): number {
  return run.pace.elapsedBase + (now() - run.pace.started);
}

/** True when score `a` is better than `b` (by `greaterIsBetter`). */
export function better(run: Run<unknown>, a: number, b: number): boolean {
  return run.o.greaterIsBetter ? a > b : a < b;
}

/**
 * Lets the event loop run (signal handlers, timers, I/O) before the next step. The CPU backend's
 * kernels run synchronously and `data()` resolves as a microtask, so without this a Ctrl-C would
 * only be seen when an epoch's evaluation awaits real I/O. A macrotask turn costs microseconds.
 */
export const yieldToEventLoop = (): Promise<void> =>
  new Promise((resolve) => {
    if (typeof setImmediate === 'function') setImmediate(resolve);
    else setTimeout(resolve, 0);
  });

export function isFloat(t: Tensor): boolean {
  return t.dtype !== 'int32';
}

/** The task's trainable tensors, checked: float, live, with requiresGrad. */
function trainables<B>(task: TrainTask<B>): [string, Tensor][] {
  const named = [...task.trainable()] as [string, Tensor][];
  if (named.length === 0) throw new Error('train: the task has no trainable tensors: trainable() returned nothing');
  for (const [name, t] of named) {
    if (t.isDisposed) throw new Error(`train: trainable "${name}" (${t.describe()}) was disposed`);
    if (!isFloat(t)) throw new Error(`train: trainable "${name}" is ${t.describe()}: only float tensors can be trained`);
    if (!t.requiresGrad)
      throw new Error(`train: trainable "${name}" (${t.describe()}) has requiresGrad false: set it (or leave it out of trainable())`);
  }
  return named;
}

/** A fresh run at step 0: options checked, trainables checked, the optimizer made (its moments come with the first update). */
export function openRun<B>(task: TrainTask<B>, options: TrainOptions): Run<B> {
  checkCommunicator(options.communicator);
  const o = resolve(options, task.trainSize);
  // Rank 0 writes the run folder and shows progress; the other ranks of a data-parallel run neither.
  const root = (options.communicator?.rank ?? 0) === 0;
  const named = trainables(task);
  const optimizer = new AdamW(named, { betas: o.betas, eps: o.eps, weightDecay: o.weightDecay, noDecay: options.noDecay });
  const generators = task.generators?.() ?? {};
  const dataRng = new Generator(o.seed);
  const fingerprint: Record<string, unknown> = {
    epochs: o.epochs,
    batchSize: o.batchSize,
    microBatchSize: o.microBatchSize,
    lr: o.lr,
    weightDecay: o.weightDecay,
    betas: o.betas,
    eps: o.eps,
    schedule: o.schedule,
    warmupSteps: o.warmupSteps,
    maxGradNorm: o.maxGradNorm,
    seed: o.seed,
    trainSize: o.trainSize,
    evaluateUntrained: o.evaluateUntrained,
    trainable: named.map(([n, t]) => `${n} ${t.dtype} [${t.shape.join(', ')}]`),
    generators: Object.keys(generators),
    config: options.config ?? {},
    // A run over several processes: resuming needs as many (the global batch is batchSize × ranks).
    ...(o.ranks > 1 ? { ranks: o.ranks } : {}),
  };
  const counters: RunCounters = {
    epochLossSum: 0,
    epochSteps: 0,
    windowLossSum: 0,
    windowSteps: 0,
    windowTokens: 0,
    windowSeconds: 0,
    lastLr: 0,
    elapsedSeconds: 0,
  };
  return {
    task,
    options,
    o,
    named,
    optimizer,
    steps: new StepRunner(task, named, optimizer, o, generators),
    sched: { kind: o.schedule, warmupSteps: o.warmupSteps, totalSteps: o.totalSteps },
    out: root ? options.out : undefined,
    progress: options.progress === false || !root ? null : new Progress(options.progress ?? {}),
    generators,
    dataRng,
    fingerprint,
    state: {
      step: 0,
      epochsDone: 0,
      stepInEpoch: 0,
      epochStartRng: dataRng.state(),
      best: null,
      bestState: null,
      validation: [],
      log: [],
      counters,
    },
    marks: { resumedFrom: null, lastCheckpoint: null, lastCheckpointStep: -1 },
    pace: { started: now(), elapsedBase: 0, tokens: 0, seconds: 0, steps: 0 },
  };
}
