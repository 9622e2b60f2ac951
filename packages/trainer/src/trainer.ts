import { closeEpoch, runEpoch } from './epoch.js';
import { evaluate, evaluateEpoch } from './evaluation.js';
import type { TrainOptions, TrainResult } from './options.js';
import { resumeRun } from './resume.js';
import { elapsed, openRun, type Run } from './run.js';
import { checkpoint, clearCheckpoints, writeConfig, writeResults } from './run-folder.js';
import { restore } from './state.js';
import type { TrainTask, ValidationRecord } from './types.js';

export type { EpochInfo, StepInfo, TrainOptions, TrainResult } from './options.js';

/** Epoch 0: the untrained state evaluated as the first candidate for the best (unless resumed or turned off). */
async function evaluateUntrained(run: Run<unknown>): Promise<void> {
  if (run.marks.resumedFrom || !run.o.evaluateUntrained) return;
  await evaluateEpoch(run, 0, null);
  await checkpoint(run);
}

/** Loads the best state (the untrained one counts) into the tensors, scores the test split with it, writes the results. */
async function finish(run: Run<unknown>): Promise<TrainResult> {
  const { state: s, o } = run;
  if (s.bestState) restore(run.named, s.bestState, 'restoring the best state');
  const chosen: ValidationRecord = s.best ?? { epoch: s.epochsDone, step: s.step, score: Number.NaN, metrics: {} };
  const test = o.evaluateTest ? await evaluate(run, 'test', s.epochsDone) : null;
  if (test)
    run.progress?.line(
      `test score ${test.score.toFixed(4)} with the state of epoch ${chosen.epoch} (validation ${chosen.score.toFixed(4)})`,
    );
  await writeResults(run, chosen, test);
  return {
    best: chosen,
    test,
    validation: s.validation,
    steps: s.step,
    stepsPerEpoch: o.stepsPerEpoch,
    warmupSteps: o.warmupSteps,
    resumedFrom: run.marks.resumedFrom,
    elapsedSeconds: elapsed(run),
    graphs: run.steps.report,
  };
}

/**
 * Trains the task's tensors: seeded shuffling each epoch, micro-batches with gradient
 * accumulation, global-norm clipping, AdamW with a warm-up schedule, evaluation after every epoch
 * (and of the untrained state), keeping the best state, a final test evaluation with it, and the
 * run folder (logs, metrics, config, artifacts, atomic checkpoints) when `out` is given.
 *
 * Each update is the one `TrainingStep` applies (`update.ts`: norm and clipping factor on the
 * device, AdamW reading its scalars there), run by `StepRunner` through the same `GraphCache`:
 * on a backend that captures graphs each micro-batch shape the task gives as fixed-shape inputs
 * (`TrainTask.stepInputs`) is recorded once and replayed, and so are the norm and the update, with
 * the loss and gradient norm read back and checked between them, before anything is applied.
 */
export async function train<B>(task: TrainTask<B>, options: TrainOptions): Promise<TrainResult> {
  const run = openRun(task, options);
  try {
    await resumeRun(run);
    await clearCheckpoints(run);
    await writeConfig(run);
    await evaluateUntrained(run);
    for (let epoch = run.state.epochsDone + 1; epoch <= run.o.epochs; epoch++) {
      const trainLoss = await runEpoch(run, epoch);
      await evaluateEpoch(run, epoch, trainLoss);
      closeEpoch(run, epoch);
      await checkpoint(run);
    }
    return await finish(run);
  } finally {
    run.progress?.done();
    run.steps.dispose();
    run.optimizer.dispose();
  }
}
