import { peers } from './data-parallel.js';
import { TrainingAbortedError, TrainingDivergedError } from './errors.js';
import type { Run } from './run.js';
import { checkpoint, writeLogs } from './run-folder.js';
import type { Split } from './types.js';

/**
 * Stops the run after a Ctrl-C. Between steps the state is checkpointed first (over several
 * processes every rank stops at the same step, and the others wait for rank 0's checkpoint). During an
 * evaluation it is not (a checkpoint holds no state between an epoch's last step and its
 * evaluation): the newest checkpoint stays, and a resume redoes the steps after it and the evaluation.
 */
export async function aborted(run: Run<unknown>, during: Split | null, epoch: number, cause: unknown): Promise<never> {
  if (during === null) {
    await checkpoint(run);
    // Every rank agreed to stop at this step: the others wait for rank 0's checkpoint before they
    // exit (a launcher ends the whole job when one process exits with an error).
    await peers(run)?.barrier();
  }
  run.progress?.done();
  const { step, stepInEpoch } = run.state;
  const { lastCheckpoint, lastCheckpointStep } = run.marks;
  const { o } = run;
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
        : run.out
          ? 'no checkpoint was written yet, so start the run again'
          : 'no run folder, so nothing was saved'),
    step,
    lastCheckpoint,
    { cause },
  );
}

/** Stops the run at an update whose loss or gradient norm is not finite; that update was not applied. */
export async function diverged(run: Run<unknown>, epoch: number, loss: number, gradNorm: number): Promise<never> {
  await writeLogs(run);
  run.progress?.done();
  const { step, stepInEpoch } = run.state;
  const { o } = run;
  const { lastCheckpoint } = run.marks;
  const what = !Number.isFinite(loss) ? `the loss is ${loss}` : `the gradient norm is ${gradNorm} (loss ${loss})`;
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
    loss,
    gradNorm,
    lastCheckpoint,
  );
}
