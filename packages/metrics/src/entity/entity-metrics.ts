import { compareLabels } from '../classification/labels.js';
import { WarningLog } from '../classification/zero-division.js';
import { codePointLength, formatFixed, padStart } from '../text/python-format.js';
import { type EntityMode, getEntities } from './get-entities.js';
import type { Scheme } from './scheme.js';

export type EntityAverage = 'micro' | 'macro' | 'weighted' | null;

export interface EntityMetricOptions {
  /** 'default' (seqeval's lenient chunking) or 'strict' (needs `scheme`). */
  mode?: EntityMode;
  scheme?: Scheme;
  suffix?: boolean;
  /** Default 'micro' (seqeval's `f1_score` default). */
  average?: EntityAverage;
  beta?: number;
  /** seqeval's: 'warn' (acts as 0), 0 or 1. */
  zeroDivision?: 0 | 1 | 'warn';
  onWarning?: (message: string) => void;
}

export interface EntityScoresPerType {
  types: string[];
  precision: number[];
  recall: number[];
  f1: number[];
  support: number[];
  warnings: string[];
}

export interface EntityScoresAveraged {
  precision: number;
  recall: number;
  f1: number;
  /** Number of true entities (seqeval returns the summed support with an average). */
  support: number;
  warnings: string[];
}

type Metric = 'precision' | 'recall' | 'f-score';

interface EntityCounts {
  types: string[];
  tp: number[];
  pred: number[];
  true: number[];
}

function checkConsistentLength(trueSeqs: readonly (readonly string[])[], predSeqs: readonly (readonly string[])[]): void {
  if (!Array.isArray(trueSeqs) || !Array.isArray(predSeqs) || ![...trueSeqs, ...predSeqs].every(Array.isArray)) {
    throw new Error('Found input variables without list of list: pass one string[] of tags per sentence');
  }
  const lt = trueSeqs.map((s) => s.length);
  const lp = predSeqs.map((s) => s.length);
  if (lt.length !== lp.length || lt.some((n, i) => n !== lp[i])) {
    const first = lt.findIndex((n, i) => n !== lp[i]);
    const where =
      lt.length !== lp.length
        ? `${lt.length} true sentences but ${lp.length} predicted`
        : `sentence ${first} has ${lt[first]} true tags but ${lp[first]} predicted`;
    throw new Error(`Found input variables with inconsistent numbers of samples: ${where}`);
  }
}

/** Entity counts per type, sorted by type name, as seqeval's `extract_tp_actual_correct`. */
export function countEntities(
  trueSeqs: readonly (readonly string[])[],
  predSeqs: readonly (readonly string[])[],
  options: Pick<EntityMetricOptions, 'mode' | 'scheme' | 'suffix' | 'onWarning'>,
): EntityCounts {
  checkConsistentLength(trueSeqs, predSeqs);
  const opts = { mode: options.mode, scheme: options.scheme, suffix: options.suffix, onWarning: options.onWarning };
  const byType = (seqs: readonly (readonly string[])[]) => {
    const m = new Map<string, Set<string>>();
    // Nested input: offsets index the flattened sequence, so a key identifies sentence and span.
    for (const e of getEntities(seqs.length === 0 ? [] : (seqs as string[][]), opts)) {
      let set = m.get(e.type);
      if (!set) m.set(e.type, (set = new Set()));
      set.add(`${e.start}:${e.end}`);
    }
    return m;
  };
  const t = byType(trueSeqs);
  const p = byType(predSeqs);
  const types = [...new Set([...t.keys(), ...p.keys()])].sort(compareLabels);
  const counts: EntityCounts = { types, tp: [], pred: [], true: [] };
  for (const type of types) {
    const ts = t.get(type) ?? new Set<string>();
    const ps = p.get(type) ?? new Set<string>();
    let tp = 0;
    for (const k of ps) if (ts.has(k)) tp++;
    counts.tp.push(tp);
    counts.pred.push(ps.size);
    counts.true.push(ts.size);
  }
  return counts;
}

function warnPrf(log: WarningLog, modifier: string, msgStart: string, size: number): void {
  const where = size === 1 ? 'due to' : 'in labels with';
  log.warn(
    `${msgStart} ill-defined and being set to 0.0 ${where} no ${modifier} samples. Use \`zero_division\` parameter to control this behavior.`,
  );
}

function divide(
  num: number[],
  den: number[],
  metric: Metric,
  modifier: string,
  warnFor: readonly Metric[],
  zeroDivision: 0 | 1 | 'warn',
  log: WarningLog,
): number[] {
  const zd = zeroDivision === 1 ? 1 : 0;
  let any = false;
  const out = num.map((n, i) => {
    if (den[i] === 0) {
      any = true;
      return zd;
    }
    return n / den[i];
  });
  if (!any || zeroDivision !== 'warn' || !warnFor.includes(metric)) return out;
  const title = metric[0].toUpperCase() + metric.slice(1);
  warnPrf(log, modifier, warnFor.includes('f-score') ? `${title} and F-score are` : `${title} is`, out.length);
  return out;
}

const mean = (a: number[]) => (a.length === 0 ? Number.NaN : a.reduce((x, y) => x + y, 0) / a.length);

/** seqeval's `_precision_recall_fscore_support` on entity counts (scikit-learn 1.2-era zero-division rules). */
export function entityPrfFromCounts(
  counts: EntityCounts,
  options: Pick<EntityMetricOptions, 'average' | 'beta' | 'zeroDivision' | 'onWarning'>,
  warnFor: readonly Metric[] = ['precision', 'recall', 'f-score'],
): EntityScoresPerType | EntityScoresAveraged {
  const log = new WarningLog(options.onWarning);
  const average = options.average === undefined ? 'micro' : options.average;
  if (![null, 'micro', 'macro', 'weighted'].includes(average)) {
    throw new Error(`average is ${JSON.stringify(average)}: it must be one of null, 'micro', 'macro', 'weighted'`);
  }
  const beta = options.beta ?? 1;
  if (!(beta >= 0)) throw new Error(`beta is ${beta}: it should be >= 0 in the F-beta score`);
  const zeroDivision = options.zeroDivision ?? 'warn';
  if (zeroDivision !== 'warn' && zeroDivision !== 0 && zeroDivision !== 1) {
    throw new Error(`zeroDivision is ${JSON.stringify(zeroDivision)}: seqeval accepts 'warn', 0 or 1`);
  }
  const sum = (a: number[]) => a.reduce((x, y) => x + y, 0);
  let { tp, pred, true: tru } = counts;
  if (average === 'micro') {
    tp = [sum(tp)];
    pred = [sum(pred)];
    tru = [sum(tru)];
  }
  const precision = divide(tp, pred, 'precision', 'predicted', warnFor, zeroDivision, log);
  const recall = divide(tp, tru, 'recall', 'true', warnFor, zeroDivision, log);
  if (zeroDivision === 'warn' && warnFor.length === 1 && warnFor[0] === 'f-score') {
    if (tru.some((t, i) => t === 0 && pred[i] === 0)) warnPrf(log, 'true nor predicted', 'F-score is', tru.length);
  }
  let f1: number[];
  if (beta === Number.POSITIVE_INFINITY) {
    f1 = recall;
  } else {
    const beta2 = beta * beta;
    f1 = precision.map((p, i) => {
      const denom = beta2 * p + recall[i];
      return ((1 + beta2) * p * recall[i]) / (denom === 0 ? 1 : denom);
    });
  }
  if (average === null) {
    return { types: counts.types, precision, recall, f1, support: tru, warnings: log.messages };
  }
  const support = sum(counts.true);
  if (average === 'weighted') {
    if (sum(tru) === 0) {
      const zd = zeroDivision === 1 ? 1 : 0;
      const noPred = sum(pred) === 0;
      return { precision: noPred ? zd : 0, recall: zd, f1: noPred ? zd : 0, support, warnings: log.messages };
    }
    const w = tru;
    const wsum = sum(w);
    const wavg = (a: number[]) => a.reduce((acc, v, i) => acc + v * w[i], 0) / wsum;
    return { precision: wavg(precision), recall: wavg(recall), f1: wavg(f1), support, warnings: log.messages };
  }
  return { precision: mean(precision), recall: mean(recall), f1: mean(f1), support, warnings: log.messages };
}

/**
 * Entity-level precision / recall / F1 over sentences of tags, as seqeval's
 * `precision_recall_fscore_support` (mode 'default') or its strict `mode='strict', scheme=…`.
 */
export function entityPrecisionRecallF1(
  trueSeqs: readonly (readonly string[])[],
  predSeqs: readonly (readonly string[])[],
  options: EntityMetricOptions & { average: null },
): EntityScoresPerType;
export function entityPrecisionRecallF1(
  trueSeqs: readonly (readonly string[])[],
  predSeqs: readonly (readonly string[])[],
  options?: EntityMetricOptions & { average?: 'micro' | 'macro' | 'weighted' },
): EntityScoresAveraged;
export function entityPrecisionRecallF1(
  trueSeqs: readonly (readonly string[])[],
  predSeqs: readonly (readonly string[])[],
  options: EntityMetricOptions = {},
): EntityScoresPerType | EntityScoresAveraged {
  return entityPrfFromCounts(countEntities(trueSeqs, predSeqs, options), options);
}

export interface EntityReportOptions extends Omit<EntityMetricOptions, 'average' | 'beta'> {
  /** Decimal places (default 2). */
  digits?: number;
}

export interface EntityReportRow {
  precision: number;
  recall: number;
  'f1-score': number;
  support: number;
}

export interface EntityClassificationReport {
  /** As seqeval's `classification_report(..., output_dict=False)`. */
  text: string;
  /** As `output_dict=True`: a row per type, then `micro avg`, `macro avg`, `weighted avg`. */
  dict: Record<string, EntityReportRow>;
  warnings: string[];
}

/** seqeval's `classification_report`. With no entity at all seqeval raises; this returns the empty table. */
export function entityClassificationReport(
  trueSeqs: readonly (readonly string[])[],
  predSeqs: readonly (readonly string[])[],
  options: EntityReportOptions = {},
): EntityClassificationReport {
  const digits = options.digits ?? 2;
  const warnings: string[] = [];
  const onWarning = (m: string) => {
    warnings.push(m);
    options.onWarning?.(m);
  };
  const counts = countEntities(trueSeqs, predSeqs, { ...options, onWarning });
  const common = { zeroDivision: options.zeroDivision, onWarning };
  const per = entityPrfFromCounts(counts, { ...common, average: null }) as EntityScoresPerType;
  const width = Math.max(...counts.types.map(codePointLength), codePointLength('weighted avg'), digits);
  const fixed = (x: number) => padStart(formatFixed(x, digits), 9);
  const line = (name: string, cells: string[]) => `${padStart(name, width)} ${cells.map((c) => ` ${c}`).join('')}`;
  const rows: string[] = [];
  const dict: Record<string, EntityReportRow> = {};
  const write = (name: string, p: number, r: number, f: number, s: number) => {
    dict[name] = { precision: p, recall: r, 'f1-score': f, support: s };
    rows.push(line(name, [fixed(p), fixed(r), fixed(f), padStart(String(s), 9)]));
  };
  per.types.forEach((t, i) => {
    write(t, per.precision[i], per.recall[i], per.f1[i], per.support[i]);
  });
  rows.push('');
  for (const average of ['micro', 'macro', 'weighted'] as const) {
    const a = entityPrfFromCounts(counts, { ...common, average }) as EntityScoresAveraged;
    write(`${average} avg`, a.precision, a.recall, a.f1, a.support);
  }
  rows.push('');
  const header = `${line(
    '',
    ['precision', 'recall', 'f1-score', 'support'].map((h) => padStart(h, 9)),
  )}\n\n`;
  return { text: header + rows.join('\n'), dict, warnings };
}
