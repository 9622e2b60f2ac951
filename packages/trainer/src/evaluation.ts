import { peers } from './data-parallel.js';
import { better, elapsed, type Run } from './run.js';
import { snapshot } from './state.js';
import { aborted } from './stop.js';
import type { Evaluation, Split, ValidationRecord } from './types.js';

/**
 * `TrainTask.evaluate` as the trainer calls it: in evaluation mode, with the run's signal (a task
 * that evaluates in batches can stop between them, by throwing, when the run is aborted), and the
 * result checked. This is the one place a split is scored: over several processes the task gets
 * the communicator, scores its share of the split and gathers the others' (every rank gets the
 * same Evaluation).
 */
export async function evaluate(run: Run<unknown>, split: Split, epoch: number): Promise<Evaluation> {
  run.task.setTraining?.(false);
  const signal = run.options.signal;
  const communicator = peers(run) ?? undefined;
  let r: Evaluation;
  try {
    // A task that evaluates in batches may take the signal and stop between them (throwing); one that does not ignores it.
    r = await run.task.evaluate(split, signal || communicator ? { signal, communicator } : undefined);
  } catch (error) {
    if (signal?.aborted) return aborted(run, split, epoch, signal.reason);
    throw error;
  }
  if (!r || typeof r.score !== 'number')
    throw new Error(`train: evaluate("${split}") must resolve to { score: number, metrics }, got ${JSON.stringify(r)}`);
  return { score: r.score, metrics: r.metrics ?? {} };
}

/**
 * Scores the validation split after an epoch (epoch 0: the untrained state), keeps the state when
 * it is the best so far, and reports it: log row, progress line, `onEpoch`.
 */
export async function evaluateEpoch(run: Run<unknown>, epoch: number, trainLoss: number | null): Promise<void> {
  const s = run.state;
  const v = await evaluate(run, 'validation', epoch);
  const record: ValidationRecord = { epoch, step: s.step, score: v.score, metrics: v.metrics };
  s.validation.push(record);
  const improved = s.best === null || better(run, v.score, s.best.score);
  if (improved) {
    s.best = record;
    s.bestState = await snapshot(run.named);
  }
  s.log.push({
    epoch,
    step: s.step,
    lr: s.counters.lastLr,
    loss: trainLoss,
    valScore: v.score,
    tokensPerSecond: run.pace.seconds > 0 ? run.pace.tokens / run.pace.seconds : null,
    elapsedSeconds: elapsed(run),
  });
  const best = s.best as ValidationRecord;
  run.progress?.line(
    `epoch ${epoch}/${run.o.epochs} validation score ${v.score.toFixed(4)}${trainLoss === null ? '' : ` train loss ${trainLoss.toFixed(4)}`}` +
      ` | best ${best.score.toFixed(4)} at epoch ${best.epoch}${improved ? ' (new)' : ''}`,
  );
  await run.options.onEpoch?.({ epoch, step: s.step, validation: v, trainLoss, best, improved });
}
