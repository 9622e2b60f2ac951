import { add, backward, cast, concat, Generator, noGrad, reshape, scale, type Tensor, tidy } from '@peft/core';
import { AdamW, type NoDecayRule } from './adamw.js';
import {
  CHECKPOINT_DIR,
  type CheckpointState,
  intactCheckpointNote,
  pruneCheckpoints,
  type RunCounters,
  readLatestCheckpoint,
  STATE_FORMAT,
  writeCheckpoint,
} from './checkpoint.js';
import { CheckpointError, causeInWords, errorCode, RunFolderError, TrainingAbortedError, TrainingDivergedError } from './errors.js';
import { type LogRow, logCsv } from './log.js';
import { Progress, type ProgressOptions } from './progress.js';
import { learningRate, SCHEDULE_KINDS, type ScheduleKind, type ScheduleOptions } from './schedule.js';
import { shuffledIndices } from './shuffle.js';
import { type HostState, restore, snapshot, writeHostState } from './state.js';
import { jsonText, type RunStore, subStore } from './store.js';
import type { Evaluation, Split, TrainTask, ValidationRecord } from './types.js';
import { applyUpdateAt, type GradientScale, gradientScale } from './update.js';

export interface TrainOptions {
  /** Passes over the training set. */
  epochs: number;
  /** Examples per optimizer update (Study A: 32). The last batch of an epoch may be smaller. */
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
}

interface Resolved {
  epochs: number;
  batchSize: number;
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

function resolve(o: TrainOptions, trainSize: number): Resolved {
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
  const stepsPerEpoch = Math.ceil(trainSize / batchSize);
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
  };
}

const now = (): number => performance.now() / 1000;

/**
 * Lets the event loop run (signal handlers, timers, I/O) before the next step. The CPU backend's
 * kernels run synchronously and `data()` resolves as a microtask, so without this a Ctrl-C would
 * only be seen when an epoch's evaluation awaits real I/O. A macrotask turn costs microseconds.
 */
const yieldToEventLoop = (): Promise<void> =>
  new Promise((resolve) => {
    if (typeof setImmediate === 'function') setImmediate(resolve);
    else setTimeout(resolve, 0);
  });

/** A value for a message, cut short when long (the list of trainable tensors). */
function shown(v: unknown): string {
  const text = JSON.stringify(v) ?? 'nothing';
  return text.length > 80 ? `${text.slice(0, 77)}...` : text;
}

/**
 * The refusal to resume from a checkpoint whose state.json records settings that differ from this
 * run's: each differing setting with both values (at most four), and the ways out.
 */
function settingsRefusal(
  checkpoint: string,
  diff: readonly string[],
  there: Record<string, unknown>,
  now: Record<string, unknown>,
): CheckpointError {
  const listed = diff.slice(0, 4);
  const more = diff.length > listed.length ? `; and ${diff.length - listed.length} more (${diff.slice(4).join(', ')})` : '';
  const file = `${checkpoint}/state.json`;
  return new CheckpointError(
    `train: cannot resume from ${checkpoint}: it was made with different settings: ${listed
      .map((k) => `${k} ${shown(there[k])} there, ${shown(now[k])} now`)
      .join('; ')}${more} (as its state.json records). Resume with the original settings ` +
      `(${listed.map((k) => `${k} ${shown(there[k])}`).join(', ')}), or start a new run: in another run folder, ` +
      'or in this one without resume (--overwrite), which removes its checkpoints.',
    file,
  );
}

/**
 * `TrainTask.evaluate` as the trainer calls it: with the run's signal, so that a task that
 * evaluates in batches can stop between them (by throwing) when the run is aborted.
 */

const ADAPTER_DIR = 'adapter';

/** The process id where there is one (Node), for temporary names that the stale-file sweep of `nodeRunStore` recognises. */
const pid = (): number => (globalThis as { process?: { pid?: number } }).process?.pid ?? 0;

/**
 * Writes the run's result into `adapter/` so that a failed write leaves the previous one as it was:
 * the new files go into a temporary folder beside it, then the old folder is moved aside, the new
 * one moved in, and the old one removed; a failed move puts the old one back. The temporary names
 * (`.tmp-step-NNNNNNNN-<pid>-adapter`, `…-oldadapter`) follow the checkpoints' temporary folders,
 * so that what a killed run leaves is removed by the next one.
 */
async function replaceAdapter(out: RunStore, step: number, write: (sink: RunStore) => Promise<void>): Promise<void> {
  const base = `.tmp-step-${String(step).padStart(8, '0')}-${pid()}-`;
  const tmp = `${base}adapter`;
  const aside = `${base}oldadapter`;
  const hadOld = (await out.list('')).includes(ADAPTER_DIR);
  /** The error for a failed step; a store's own RunFolderError (cause in words, intact checkpoint) is kept, its temporary path shown as the adapter's. */
  const failed = async (error: unknown, file: string, doing: string, kept = true): Promise<RunFolderError> => {
    const previous = !hadOld
      ? ''
      : kept
        ? ' (the previous one is unchanged)'
        : ` (the previous one could not be moved back: it is in ${out.name}/${aside}; move it to ${out.name}/${ADAPTER_DIR} by hand)`;
    const head = `cannot write the adapter ${out.name}/${ADAPTER_DIR}${previous}: `;
    if (error instanceof RunFolderError) {
      const shownAs = (text: string) => (doing.startsWith('writing') ? text.split(tmp).join(ADAPTER_DIR) : text);
      return new RunFolderError(head + shownAs(error.message), shownAs(error.file), error.code, { cause: error });
    }
    const code = errorCode(error) ?? 'unknown';
    const why =
      code === 'unknown' ? (error instanceof Error ? error.message : String(error)).slice(0, 300) : `${causeInWords(code)} (${code})`;
    return new RunFolderError(`${head}${doing} failed: ${why}. ${await intactCheckpointNote(out, code)}`, file, code, { cause: error });
  };
  await out.remove(tmp);
  let writing = '';
  const inner = subStore(out, tmp);
  const sink: RunStore = {
    ...inner,
    name: inner.name,
    writeFile: (path, data) => {
      writing = path;
      return inner.writeFile(path, data);
    },
  };
  try {
    await write(sink);
  } catch (error) {
    await out.remove(tmp).catch(() => {});
    const file = `${out.name}/${ADAPTER_DIR}/${writing}`;
    throw await failed(error, file, `writing ${ADAPTER_DIR}/${writing || '(its first file)'}`);
  }
  if (hadOld) {
    await out.remove(aside);
    try {
      await out.rename(ADAPTER_DIR, aside);
    } catch (error) {
      await out.remove(tmp).catch(() => {});
      throw await failed(error, `${out.name}/${ADAPTER_DIR}`, `moving the previous ${ADAPTER_DIR} aside`);
    }
  }
  try {
    await out.rename(tmp, ADAPTER_DIR);
  } catch (error) {
    const back =
      !hadOld ||
      (await out.rename(aside, ADAPTER_DIR).then(
        () => true,
        () => false,
      ));
    await out.remove(tmp).catch(() => {});
    throw await failed(error, `${out.name}/${ADAPTER_DIR}`, `moving the new ${ADAPTER_DIR} into place`, back);
  }
  // What a failed removal leaves is a temporary folder that the next run's sweep removes.
  if (hadOld) await out.remove(aside).catch(() => {});
}

function isFloat(t: Tensor): boolean {
  return t.dtype !== 'int32';
}

/**
 * Trains the task's tensors: seeded shuffling each epoch, micro-batches with gradient
 * accumulation, global-norm clipping, AdamW with a warm-up schedule, evaluation after every epoch
 * (and of the untrained state), keeping the best state, a final test evaluation with it, and the
 * run folder (logs, metrics, config, artifacts, atomic checkpoints) when `out` is given.
 */
export async function train<B>(task: TrainTask<B>, options: TrainOptions): Promise<TrainResult> {
  const o = resolve(options, task.trainSize);
  const named = [...task.trainable()] as [string, Tensor][];
  if (named.length === 0) throw new Error('train: the task has no trainable tensors: trainable() returned nothing');
  for (const [name, t] of named) {
    if (t.isDisposed) throw new Error(`train: trainable "${name}" (${t.describe()}) was disposed`);
    if (!isFloat(t)) throw new Error(`train: trainable "${name}" is ${t.describe()}: only float tensors can be trained`);
    if (!t.requiresGrad)
      throw new Error(`train: trainable "${name}" (${t.describe()}) has requiresGrad false: set it (or leave it out of trainable())`);
  }
  const optimizer = new AdamW(named, { betas: o.betas, eps: o.eps, weightDecay: o.weightDecay, noDecay: options.noDecay });
  const sched: ScheduleOptions = { kind: o.schedule, warmupSteps: o.warmupSteps, totalSteps: o.totalSteps };
  const out = options.out;
  const progress = options.progress === false ? null : new Progress(options.progress ?? {});
  const generators = task.generators?.() ?? {};
  const dataRng = new Generator(o.seed);
  const better = (a: number, b: number) => (o.greaterIsBetter ? a > b : a < b);

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
  };

  // The run's position and history (everything a checkpoint restores).
  let step = 0;
  let epochsDone = 0;
  let stepInEpoch = 0;
  let epochStartRng = dataRng.state();
  let best: ValidationRecord | null = null;
  let bestState: HostState | null = null;
  let validation: ValidationRecord[] = [];
  let log: LogRow[] = [];
  let counters: RunCounters = {
    epochLossSum: 0,
    epochSteps: 0,
    windowLossSum: 0,
    windowSteps: 0,
    windowTokens: 0,
    windowSeconds: 0,
    lastLr: 0,
    elapsedSeconds: 0,
  };
  let resumedFrom: string | null = null;
  let lastCheckpoint: string | null = null;
  let lastCheckpointStep = -1;

  const started = now();
  let elapsedBase = 0;
  const elapsed = () => elapsedBase + (now() - started);
  // Pace of this process, for tokens/s and the ETA.
  let runTokens = 0;
  let runSeconds = 0;
  let runSteps = 0;

  try {
    if (out && options.resume) {
      const ckpt = await readLatestCheckpoint(out, {
        epochs: o.epochs,
        stepsPerEpoch: o.stepsPerEpoch,
        generators: Object.keys(generators),
      });
      if (ckpt) {
        const s: CheckpointState = ckpt.state;
        const diff = Object.keys(fingerprint).filter((k) => JSON.stringify(fingerprint[k]) !== JSON.stringify(s.fingerprint[k]));
        if (diff.length > 0) throw settingsRefusal(`${out.name}/${ckpt.path}`, diff, s.fingerprint, fingerprint);
        restore(named, ckpt.trainable, `resume from ${ckpt.path}`);
        optimizer.setState({ steps: s.optimizerSteps, moments: new Map([...ckpt.moments].map(([k, h]) => [k, h.data])) });
        for (const [name, g] of Object.entries(generators)) {
          const st = s.generators[name];
          if (!st) throw new Error(`train: checkpoint ${ckpt.path} has no state for generator "${name}"`);
          g.setState(st);
        }
        step = s.step;
        epochsDone = s.epochsDone;
        stepInEpoch = s.stepInEpoch;
        epochStartRng = s.epochStartRng;
        best = s.best;
        bestState = ckpt.best;
        // readLatestCheckpoint checks this too; the run must never report a best state it does not hold.
        if ((best === null) !== (bestState === null))
          throw new Error(
            `train: checkpoint ${resumedFrom ?? ckpt.path} has a best record without its tensors, or tensors without a record`,
          );
        validation = s.validation;
        log = s.log;
        counters = s.counters;
        elapsedBase = counters.elapsedSeconds;
        resumedFrom = `${out.name}/${ckpt.path}`;
        lastCheckpoint = resumedFrom;
        lastCheckpointStep = step;
        progress?.line(
          `resuming from ${resumedFrom}: epoch ${epochsDone + 1}, step ${stepInEpoch}/${o.stepsPerEpoch} (${step}/${o.totalSteps})`,
        );
      } else {
        progress?.line(`no checkpoint in ${out.name}/${CHECKPOINT_DIR} to resume from: starting afresh`);
      }
    }
    if (out && !resumedFrom) await out.remove(CHECKPOINT_DIR);

    const writeLogs = async () => {
      if (!out) return;
      await out.writeFile('log.csv', logCsv(log));
      await out.writeFile('val-metrics.json', jsonText(validation));
    };

    const checkpoint = async (): Promise<void> => {
      if (!out || lastCheckpointStep === step) return;
      counters.elapsedSeconds = elapsed();
      const moments = await optimizer.state();
      const state: CheckpointState = {
        format: STATE_FORMAT,
        fingerprint,
        step,
        epochsDone,
        stepInEpoch,
        epochStartRng,
        generators: Object.fromEntries(Object.entries(generators).map(([k, g]) => [k, g.state()])),
        optimizerSteps: moments.steps,
        best,
        validation,
        log,
        counters,
      };
      const hostMoments: HostState = new Map(
        [...moments.moments].map(([k, data]) => [k, { dtype: 'float32' as const, shape: [data.length], data }]),
      );
      const path = await writeCheckpoint(out, { state, trainable: await snapshot(named), moments: hostMoments, best: bestState });
      lastCheckpoint = `${out.name}/${path}`;
      lastCheckpointStep = step;
      await pruneCheckpoints(out, o.keepCheckpoints);
      await writeLogs();
    };

    /**
     * Stops the run after a Ctrl-C. Between steps the state is checkpointed first. During an
     * evaluation it is not (a checkpoint holds no state between an epoch's last step and its
     * evaluation): the newest checkpoint stays, and a resume redoes the steps after it and the evaluation.
     */
    const aborted = async (during: Split | null, epoch: number, cause: unknown): Promise<never> => {
      if (during === null) await checkpoint();
      progress?.done();
      const redo =
        during === null
          ? ''
          : lastCheckpointStep === step
            ? ' (the evaluation is redone)'
            : ` (${lastCheckpointStep + 1 === step ? `step ${step}` : `steps ${lastCheckpointStep + 1} to ${step}`} and the evaluation are redone)`;
      throw new TrainingAbortedError(
        `training aborted${during === null ? '' : ` during the ${during} evaluation`} at epoch ${epoch}, ` +
          `step ${stepInEpoch}/${o.stepsPerEpoch} (${step}/${o.totalSteps}); ` +
          (lastCheckpoint
            ? `continue it with resume: true from ${lastCheckpoint}${redo}`
            : out
              ? 'no checkpoint was written yet, so start the run again'
              : 'no run folder, so nothing was saved'),
        step,
        lastCheckpoint,
        { cause },
      );
    };

    const evaluate = async (split: Split, epoch: number): Promise<Evaluation> => {
      task.setTraining?.(false);
      const signal = options.signal;
      let r: Evaluation;
      try {
        // A task that evaluates in batches may take the signal and stop between them (throwing); one that does not ignores it.
        r = await task.evaluate(split, signal ? { signal } : undefined);
      } catch (error) {
        if (signal?.aborted) return aborted(split, epoch, signal.reason);
        throw error;
      }
      if (!r || typeof r.score !== 'number')
        throw new Error(`train: evaluate("${split}") must resolve to { score: number, metrics }, got ${JSON.stringify(r)}`);
      return { score: r.score, metrics: r.metrics ?? {} };
    };

    const recordEpoch = async (epoch: number, trainLoss: number | null): Promise<void> => {
      const v = await evaluate('validation', epoch);
      const record: ValidationRecord = { epoch, step, score: v.score, metrics: v.metrics };
      validation.push(record);
      const improved = best === null || better(v.score, best.score);
      if (improved) {
        best = record;
        bestState = await snapshot(named);
      }
      log.push({
        epoch,
        step,
        lr: counters.lastLr,
        loss: trainLoss,
        valScore: v.score,
        tokensPerSecond: runSeconds > 0 ? runTokens / runSeconds : null,
        elapsedSeconds: elapsed(),
      });
      const bestNow = best as ValidationRecord;
      progress?.line(
        `epoch ${epoch}/${o.epochs} validation score ${v.score.toFixed(4)}${trainLoss === null ? '' : ` train loss ${trainLoss.toFixed(4)}`}` +
          ` | best ${bestNow.score.toFixed(4)} at epoch ${bestNow.epoch}${improved ? ' (new)' : ''}`,
      );
      await options.onEpoch?.({ epoch, step, validation: v, trainLoss, best: bestNow, improved });
    };

    if (out) {
      await out.writeFile(
        'config.json',
        jsonText({
          ...fingerprint,
          trainable: named.map(([n, t]) => ({
            name: n,
            dtype: t.dtype,
            shape: t.shape,
            weightDecay: optimizer.params.find((p) => p.name === n)!.weightDecay,
          })),
          trainableParameters: named.reduce((s, [, t]) => s + t.size, 0),
          stepsPerEpoch: o.stepsPerEpoch,
          totalSteps: o.totalSteps,
          greaterIsBetter: o.greaterIsBetter,
          task: task.describe?.() ?? {},
        }),
      );
    }

    if (!resumedFrom && o.evaluateUntrained) {
      await recordEpoch(0, null);
      await checkpoint();
    }

    const microBatches = (indices: number[]): number[][] => {
      const chunks: number[][] = [];
      for (let i = 0; i < indices.length; i += o.microBatchSize) chunks.push(indices.slice(i, i + o.microBatchSize));
      return chunks;
    };

    /** One optimizer update; returns what the logs need. Throws before updating when the loss or the gradients are not finite. */
    const update = async (epoch: number, indices: number[]) => {
      const t0 = now();
      const chunks = microBatches(indices);
      const batches: B[] = [];
      for (const c of chunks) batches.push(await task.batch(c));
      const weights = batches.map((b, i) => (task.weight ? task.weight(b) : chunks[i]!.length));
      const totalWeight = weights.reduce((a, b) => a + b, 0);
      if (!weights.every((w) => Number.isFinite(w) && w >= 0) || !(totalWeight > 0)) {
        throw new Error(`train: micro-batch weights must be finite, >= 0 and not all 0, got [${weights.join(', ')}]`);
      }
      let tokens = 0;
      let lossSum: Tensor | null = null;
      let scaleBy: GradientScale | null = null;
      try {
        for (let i = 0; i < batches.length; i++) {
          const w = weights[i]! / totalWeight;
          const b = batches[i]!;
          const prev: Tensor | null = lossSum;
          lossSum = tidy(() => {
            const loss = task.loss(b, { epoch, step, microStep: i });
            if (loss.size !== 1 || !isFloat(loss)) throw new Error(`train: the task's loss must be a float scalar, got ${loss.describe()}`);
            if (!loss.requiresGrad) {
              throw new Error(
                `train: the task's loss ${loss.describe()} does not depend on any trainable tensor: compute it from the tensors trainable() returns (with requiresGrad) and not under noGrad`,
              );
            }
            const l32 = loss.dtype === 'float32' ? loss : cast(loss, 'float32');
            const scaled = w === 1 ? l32 : scale(l32, w);
            backward(scaled);
            return noGrad(() => (prev ? add(prev, reshape(scaled, [1])) : reshape(scaled, [1])));
          });
          prev?.dispose();
          tokens += task.tokens ? task.tokens(b) : chunks[i]!.length;
        }
        const grads = named.map(([, t]) => t.grad).filter((g): g is Tensor => g !== null);
        scaleBy = gradientScale(grads, o.maxGradNorm, named[0]![1].backend);
        const values = noGrad(() => concat([lossSum!, scaleBy!.norm, scaleBy!.coef], 0));
        const [loss, gradNorm, coef] = await values.data().finally(() => values.dispose());
        if (!Number.isFinite(loss!) || !Number.isFinite(gradNorm!)) {
          optimizer.zeroGrad();
          return { ok: false as const, loss: loss!, gradNorm: gradNorm!, tokens };
        }
        const lr = learningRate(o.lr, step, sched);
        applyUpdateAt(optimizer, lr, scaleBy.coef);
        optimizer.zeroGrad();
        return { ok: true as const, loss: loss!, gradNorm: gradNorm!, coef: coef!, lr, tokens, seconds: now() - t0 };
      } catch (error) {
        optimizer.zeroGrad();
        throw error;
      } finally {
        (lossSum as Tensor | null)?.dispose();
        scaleBy?.norm.dispose();
        scaleBy?.coef.dispose();
      }
    };

    for (let epoch = epochsDone + 1; epoch <= o.epochs; epoch++) {
      dataRng.setState(epochStartRng);
      const order = shuffledIndices(o.trainSize, dataRng);
      task.setTraining?.(true);
      for (; stepInEpoch < o.stepsPerEpoch; ) {
        await yieldToEventLoop();
        if (options.signal?.aborted) await aborted(null, epoch, options.signal.reason);
        const indices = order.slice(stepInEpoch * o.batchSize, (stepInEpoch + 1) * o.batchSize);
        const r = await update(epoch, indices);
        if (!r.ok) {
          await writeLogs();
          progress?.done();
          const what = !Number.isFinite(r.loss) ? `the loss is ${r.loss}` : `the gradient norm is ${r.gradNorm} (loss ${r.loss})`;
          throw new TrainingDivergedError(
            `training stopped: ${what} at epoch ${epoch}, step ${stepInEpoch + 1}/${o.stepsPerEpoch} (update ${step + 1} of ${o.totalSteps}); ` +
              'that update was not applied. ' +
              (lastCheckpoint
                ? `The last good checkpoint is kept at ${lastCheckpoint}.`
                : 'No checkpoint was written (no run folder, or none written yet).') +
              ' Lower the learning rate or clip gradients (maxGradNorm), then start again.',
            epoch,
            stepInEpoch + 1,
            step,
            r.loss,
            r.gradNorm,
            lastCheckpoint,
          );
        }
        step++;
        stepInEpoch++;
        runSteps++;
        runTokens += r.tokens;
        runSeconds += r.seconds;
        counters.lastLr = r.lr;
        counters.epochLossSum += r.loss;
        counters.epochSteps++;
        counters.windowLossSum += r.loss;
        counters.windowSteps++;
        counters.windowTokens += r.tokens;
        counters.windowSeconds += r.seconds;
        if (step % o.logEverySteps === 0) {
          log.push({
            epoch,
            step,
            lr: r.lr,
            loss: counters.windowLossSum / counters.windowSteps,
            valScore: null,
            tokensPerSecond: counters.windowSeconds > 0 ? counters.windowTokens / counters.windowSeconds : null,
            elapsedSeconds: elapsed(),
          });
          counters.windowLossSum = counters.windowSteps = counters.windowTokens = counters.windowSeconds = 0;
        }
        const tokensPerSecond = runSeconds > 0 ? runTokens / runSeconds : 0;
        progress?.step({
          epoch,
          epochs: o.epochs,
          stepInEpoch,
          stepsPerEpoch: o.stepsPerEpoch,
          step,
          totalSteps: o.totalSteps,
          loss: r.loss,
          lr: r.lr,
          tokensPerSecond,
          etaSeconds: runSteps > 0 ? ((o.totalSteps - step) * runSeconds) / runSteps : null,
        });
        if (o.checkpointEverySteps > 0 && step % o.checkpointEverySteps === 0 && stepInEpoch < o.stepsPerEpoch) await checkpoint();
        await options.onStep?.({
          epoch,
          stepInEpoch,
          stepsPerEpoch: o.stepsPerEpoch,
          step,
          totalSteps: o.totalSteps,
          lr: r.lr,
          loss: r.loss,
          gradNorm: r.gradNorm,
          clipCoefficient: r.coef,
          tokens: r.tokens,
          tokensPerSecond,
          elapsedSeconds: elapsed(),
        });
      }
      progress?.done();
      const trainLoss = counters.epochSteps > 0 ? counters.epochLossSum / counters.epochSteps : null;
      await recordEpoch(epoch, trainLoss);
      epochsDone = epoch;
      stepInEpoch = 0;
      epochStartRng = dataRng.state();
      counters.epochLossSum = 0;
      counters.epochSteps = 0;
      await checkpoint();
    }

    // The best state (the untrained one counts) is what the run reports and leaves in the tensors.
    if (bestState) restore(named, bestState, 'restoring the best state');
    const chosen: ValidationRecord = best ?? { epoch: epochsDone, step, score: Number.NaN, metrics: {} };
    const test = o.evaluateTest ? await evaluate('test', epochsDone) : null;
    if (test)
      progress?.line(`test score ${test.score.toFixed(4)} with the state of epoch ${chosen.epoch} (validation ${chosen.score.toFixed(4)})`);
    if (out) {
      await writeLogs();
      await replaceAdapter(out, step, async (sink) => {
        if (task.saveArtifacts) await task.saveArtifacts(sink);
        else await writeHostState(sink, 'trainable.safetensors', await snapshot(named));
      });
      await out.writeFile(
        'test-metrics.json',
        jsonText({
          epoch: chosen.epoch,
          step: chosen.step,
          validationScore: chosen.score,
          score: test?.score ?? null,
          metrics: test?.metrics ?? null,
        }),
      );
    }
    return {
      best: chosen,
      test,
      validation,
      steps: step,
      stepsPerEpoch: o.stepsPerEpoch,
      warmupSteps: o.warmupSteps,
      resumedFrom,
      elapsedSeconds: elapsed(),
    };
  } finally {
    progress?.done();
    optimizer.dispose();
  }
}
