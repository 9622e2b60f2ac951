import { checkListed, checkTargets, type Label, showLabel, showLabels, targetType, type UnlistedLabels, uniqueLabels } from './labels.js';
import { WarningLog, type WarningOptions, type ZeroDivision, zeroDivisionValue } from './zero-division.js';

/** How per-label scores are combined; `null` returns them per label. */
export type Average = 'macro' | 'micro' | 'weighted' | 'binary' | null;

export interface PrfOptions extends WarningOptions {
  /** Default `null` for `precisionRecallFscoreSupport`, `'binary'` for the single-score functions. */
  average?: Average;
  /** Labels to score, in this order; labels absent from the data score as ill-defined. Default: sorted yTrue ∪ yPred. Ignored for `'binary'`. */
  labels?: readonly Label[];
  /** The positive class for `average: 'binary'`. Default 1. */
  posLabel?: Label;
  /** F-beta's beta (default 1): 0 gives precision, Infinity recall. */
  beta?: number;
  /** Default `'warn'`. */
  zeroDivision?: ZeroDivision;
  sampleWeight?: readonly number[];
  /** With `labels`: values outside them are an error (default), or left out of the counts (`'ignore'`, scikit-learn's behaviour). */
  unlistedLabels?: UnlistedLabels;
}

/** Scores per label, as scikit-learn returns with `average=None`. */
export interface PerLabelScores {
  labels: Label[];
  precision: number[];
  recall: number[];
  fscore: number[];
  /** Number (or total sample weight) of true occurrences of each label. */
  support: number[];
  warnings: string[];
}

/** Averaged scores; `support` is null, as in scikit-learn. */
export interface AveragedScores {
  precision: number;
  recall: number;
  fscore: number;
  support: null;
  warnings: string[];
}

type Metric = 'precision' | 'recall' | 'f-score';
const ALL_METRICS: readonly Metric[] = ['precision', 'recall', 'f-score'];
const AVERAGES: readonly Average[] = [null, 'micro', 'macro', 'weighted', 'binary'];

interface Counts {
  labels: Label[];
  tp: number[];
  pred: number[];
  true: number[];
}

function countPerLabel(
  yTrue: readonly Label[],
  yPred: readonly Label[],
  labels: readonly Label[],
  sampleWeight: readonly number[] | undefined,
): Counts {
  const index = new Map<Label, number[]>();
  labels.forEach((l, i) => {
    const slots = index.get(l);
    if (slots) slots.push(i);
    else index.set(l, [i]);
  });
  const n = labels.length;
  const tp = new Array<number>(n).fill(0);
  const pred = new Array<number>(n).fill(0);
  const tru = new Array<number>(n).fill(0);
  for (let s = 0; s < yTrue.length; s++) {
    const w = sampleWeight ? sampleWeight[s] : 1;
    const t = index.get(yTrue[s]);
    const p = index.get(yPred[s]);
    if (t) for (const i of t) tru[i] += w;
    if (p) for (const i of p) pred[i] += w;
    if (t && yTrue[s] === yPred[s]) for (const i of t) tp[i] += w;
  }
  return { labels: [...labels], tp, pred, true: tru };
}

function warnPrf(log: WarningLog, modifier: string, msgStart: string, resultSize: number): void {
  const where = resultSize === 1 ? 'due to' : 'in labels with';
  log.warn(
    `${msgStart} ill-defined and being set to 0.0 ${where} no ${modifier} samples. ` +
      'Use `zero_division` parameter to control this behavior.',
  );
}

/** scikit-learn's `_prf_divide`: numerator / denominator, with `zeroDivision` where the denominator is 0. */
function prfDivide(
  numerator: readonly number[],
  denominator: readonly number[],
  metric: Metric,
  modifier: string,
  warnFor: readonly Metric[],
  zeroDivision: ZeroDivision,
  log: WarningLog,
): number[] {
  const zd = zeroDivisionValue(zeroDivision);
  let anyZero = false;
  const out = numerator.map((num, i) => {
    if (denominator[i] === 0) {
      anyZero = true;
      return zd;
    }
    return num / denominator[i];
  });
  if (anyZero && zeroDivision === 'warn' && warnFor.includes(metric)) {
    const name = metric === 'f-score' ? 'F-score' : metric[0].toUpperCase() + metric.slice(1);
    warnPrf(log, modifier, `${name} is`, out.length);
  }
  return out;
}

/** scikit-learn's `_nanaverage`: NaNs are skipped; all-zero weights fall back to the plain mean. */
export function nanAverage(values: readonly number[], weights?: readonly number[]): number {
  if (values.length === 0) return Number.NaN;
  const keep: number[] = [];
  for (let i = 0; i < values.length; i++) if (!Number.isNaN(values[i])) keep.push(i);
  if (keep.length === 0) return Number.NaN;
  let sum = 0;
  if (weights) {
    let wsum = 0;
    let wdot = 0;
    for (const i of keep) {
      wsum += weights[i];
      wdot += values[i] * weights[i];
    }
    if (wsum !== 0) return wdot / wsum;
  }
  for (const i of keep) sum += values[i];
  return sum / keep.length;
}

function resolveLabels(yTrue: readonly Label[], yPred: readonly Label[], options: PrfOptions, average: Average, log: WarningLog): Label[] {
  if (!AVERAGES.includes(average)) {
    throw new Error(`average is ${JSON.stringify(average)}: it must be one of null, 'micro', 'macro', 'weighted', 'binary'`);
  }
  checkTargets(yTrue, yPred);
  const present = uniqueLabels(yTrue, yPred);
  const posLabel = options.posLabel ?? 1;
  if (average === 'binary') {
    if (targetType(yTrue, yPred) !== 'binary') {
      throw new Error(
        `Target is multiclass (labels ${showLabels(present)}) but average='binary'. ` +
          "Please choose another average setting, one of [null, 'micro', 'macro', 'weighted'].",
      );
    }
    if (!present.includes(posLabel) && present.length >= 2) {
      throw new Error(`pos_label=${showLabel(posLabel)} is not a valid label. It should be one of ${showLabels(present)}`);
    }
    if (present.length > 0) uniqueLabels(present, [posLabel]);
    return [posLabel];
  }
  if (options.posLabel !== undefined && options.posLabel !== 1) {
    log.warn(
      `Note that pos_label (set to ${showLabel(options.posLabel)}) is ignored when average != 'binary' ` +
        `(got ${JSON.stringify(average)}). You may use labels=[pos_label] to specify a single positive class.`,
    );
  }
  if (options.labels === undefined) return present;
  checkListed(options.labels, yTrue, yPred, options.unlistedLabels ?? 'error');
  return [...options.labels];
}

/** The whole of scikit-learn's `precision_recall_fscore_support`, parameterised by which metrics warn. */
export function computePrf(
  yTrue: readonly Label[],
  yPred: readonly Label[],
  options: PrfOptions,
  warnFor: readonly Metric[],
): PerLabelScores | AveragedScores {
  const log = new WarningLog(options.onWarning);
  const average = options.average === undefined ? null : options.average;
  const zeroDivision = options.zeroDivision ?? 'warn';
  zeroDivisionValue(zeroDivision);
  const beta = options.beta ?? 1;
  if (!(beta >= 0)) throw new Error(`beta is ${beta}: it should be >= 0 in the F-beta score`);
  const sw = options.sampleWeight;
  if (sw !== undefined && sw.length !== yTrue.length) {
    throw new Error(`sampleWeight has ${sw.length} values but yTrue has ${yTrue.length}: they must be the same length`);
  }
  const labels = resolveLabels(yTrue, yPred, options, average, log);
  const counts = countPerLabel(yTrue, yPred, labels, sw);
  let { tp, pred, true: tru } = counts;
  if (average === 'micro') {
    const sum = (a: number[]) => a.reduce((x, y) => x + y, 0);
    tp = [sum(tp)];
    pred = [sum(pred)];
    tru = [sum(tru)];
  }
  const precision = prfDivide(tp, pred, 'precision', 'predicted', warnFor, zeroDivision, log);
  const recall = prfDivide(tp, tru, 'recall', 'true', warnFor, zeroDivision, log);
  let fscore: number[];
  if (beta === Number.POSITIVE_INFINITY) {
    fscore = recall;
  } else if (beta === 0) {
    fscore = precision;
  } else {
    // (1 + β²)·tp / ((1 + β²)·tp + β²·fn + fp): defined whenever tp + fn + fp > 0.
    const beta2 = beta * beta;
    const num = tp.map((t) => (1 + beta2) * t);
    const den = tru.map((t, i) => beta2 * t + pred[i]);
    fscore = prfDivide(num, den, 'f-score', 'true nor predicted', warnFor, zeroDivision, log);
  }
  if (average === null) {
    return { labels: counts.labels, precision, recall, fscore, support: tru, warnings: log.messages };
  }
  const weights = average === 'weighted' ? tru : undefined;
  return {
    precision: nanAverage(precision, weights),
    recall: nanAverage(recall, weights),
    fscore: nanAverage(fscore, weights),
    support: null,
    warnings: log.messages,
  };
}

/**
 * scikit-learn's `precision_recall_fscore_support` (≥ 1.3 semantics): per-label precision,
 * recall, F-beta and support, or their `average`.
 */
export function precisionRecallFscoreSupport(
  yTrue: readonly Label[],
  yPred: readonly Label[],
  options: PrfOptions & { average: Exclude<Average, null> },
): AveragedScores;
export function precisionRecallFscoreSupport(
  yTrue: readonly Label[],
  yPred: readonly Label[],
  options?: PrfOptions & { average?: null },
): PerLabelScores;
export function precisionRecallFscoreSupport(
  yTrue: readonly Label[],
  yPred: readonly Label[],
  options: PrfOptions = {},
): PerLabelScores | AveragedScores {
  return computePrf(yTrue, yPred, options, ALL_METRICS);
}

type ScoreResult<O extends PrfOptions> = O extends { average: null } ? number[] : number;

function single<O extends PrfOptions>(
  yTrue: readonly Label[],
  yPred: readonly Label[],
  options: O | undefined,
  metric: Metric,
  pick: (r: PerLabelScores | AveragedScores) => number | number[],
): ScoreResult<O> {
  const opts: PrfOptions = { ...options, average: options?.average === undefined ? 'binary' : options.average };
  return pick(computePrf(yTrue, yPred, opts, [metric])) as ScoreResult<O>;
}

/** scikit-learn's `precision_score` (default `average: 'binary'`); per label with `average: null`. */
export function precisionScore<O extends PrfOptions>(yTrue: readonly Label[], yPred: readonly Label[], options?: O): ScoreResult<O> {
  return single(yTrue, yPred, options, 'precision', (r) => r.precision);
}

/** scikit-learn's `recall_score`. */
export function recallScore<O extends PrfOptions>(yTrue: readonly Label[], yPred: readonly Label[], options?: O): ScoreResult<O> {
  return single(yTrue, yPred, options, 'recall', (r) => r.recall);
}

/** scikit-learn's `fbeta_score`; `beta` is required. */
export function fbetaScore<O extends PrfOptions & { beta: number }>(
  yTrue: readonly Label[],
  yPred: readonly Label[],
  options: O,
): ScoreResult<O> {
  return single(yTrue, yPred, options, 'f-score', (r) => r.fscore);
}

/** scikit-learn's `f1_score`. */
export function f1Score<O extends PrfOptions>(yTrue: readonly Label[], yPred: readonly Label[], options?: O): ScoreResult<O> {
  return single(yTrue, yPred, { ...options, beta: 1 } as O, 'f-score', (r) => r.fscore);
}
