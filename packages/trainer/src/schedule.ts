/** Learning-rate schedules, as transformers' `get_scheduler` names them. */
export type ScheduleKind = 'linear' | 'cosine' | 'constant' | 'constant_with_warmup';

export const SCHEDULE_KINDS: readonly ScheduleKind[] = ['linear', 'cosine', 'constant', 'constant_with_warmup'];

export interface ScheduleOptions {
  kind: ScheduleKind;
  /** Optimizer steps of linear warm-up from 0 (ignored by 'constant'). */
  warmupSteps: number;
  /** Optimizer steps of the whole run. */
  totalSteps: number;
  /** Cosine: number of waves; transformers' default 0.5 falls once from the peak to 0. */
  numCycles?: number;
}

/**
 * The factor on the peak learning rate for the optimizer update that follows `step` completed
 * updates (transformers' LambdaLR `lr_lambda(step)`: the first update uses step 0, so with a
 * warm-up it has learning rate 0, exactly as the Hugging Face Trainer does).
 *
 * - linear: step/warmup during warm-up, then (total − step)/(total − warmup), never below 0
 *   (`get_linear_schedule_with_warmup`)
 * - cosine: warm-up, then 0.5·(1 + cos(π · 2·numCycles · progress)) (`get_cosine_schedule_with_warmup`)
 * - constant_with_warmup: warm-up, then 1; constant: always 1
 */
export function scheduleFactor(step: number, opts: ScheduleOptions): number {
  const { kind, warmupSteps: warmup, totalSteps: total } = opts;
  if (kind === 'constant') return 1;
  if (step < warmup) return step / Math.max(1, warmup);
  switch (kind) {
    case 'constant_with_warmup':
      return 1;
    case 'linear':
      return Math.max(0, (total - step) / Math.max(1, total - warmup));
    case 'cosine': {
      const progress = (step - warmup) / Math.max(1, total - warmup);
      return Math.max(0, 0.5 * (1 + Math.cos(Math.PI * (opts.numCycles ?? 0.5) * 2 * progress)));
    }
    default:
      throw new Error(`schedule "${kind as string}" is unknown: use one of ${SCHEDULE_KINDS.join(', ')}`);
  }
}

/** The learning rate of each update: `lr · scheduleFactor(step)`. */
export function learningRate(lr: number, step: number, opts: ScheduleOptions): number {
  return lr * scheduleFactor(step, opts);
}
