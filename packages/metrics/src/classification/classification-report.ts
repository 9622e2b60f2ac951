import { codePointLength, formatFixed, formatPlain, formatPythonFloat, padStart } from '../text/python-format.js';
import { checkTargets, type Label, targetType, type UnlistedLabels, uniqueLabels } from './labels.js';
import { type AveragedScores, computePrf, type PerLabelScores } from './prf.js';
import type { WarningOptions, ZeroDivision } from './zero-division.js';

export interface ClassificationReportOptions extends WarningOptions {
  labels?: readonly Label[];
  /** Display names for `labels` (or for the sorted labels when `labels` is absent). */
  targetNames?: readonly string[];
  /** Decimal places in `text` (default 2). */
  digits?: number;
  zeroDivision?: ZeroDivision;
  sampleWeight?: readonly number[];
  unlistedLabels?: UnlistedLabels;
}

/** One row of the report, keyed as scikit-learn's `output_dict=True`. */
export interface ReportRow {
  precision: number;
  recall: number;
  'f1-score': number;
  support: number;
}

/** scikit-learn's `output_dict=True`: a row per target name, then `accuracy` (a number) or `micro avg`, `macro avg`, `weighted avg`. */
export type ClassificationReportDict = Record<string, ReportRow | number>;

export interface ClassificationReport {
  /** Byte-identical to `classification_report(..., output_dict=False)`. */
  text: string;
  dict: ClassificationReportDict;
  warnings: string[];
}

const HEADERS = ['precision', 'recall', 'f1-score', 'support'];

/** scikit-learn's `classification_report`, as text and as a dictionary. */
export function classificationReport(
  yTrue: readonly Label[],
  yPred: readonly Label[],
  options: ClassificationReportOptions = {},
): ClassificationReport {
  checkTargets(yTrue, yPred);
  const digits = options.digits ?? 2;
  const zeroDivision = options.zeroDivision ?? 'warn';
  const warnings: string[] = [];
  const warn = (m: string) => {
    warnings.push(m);
    options.onWarning?.(m);
  };
  const labelsGiven = options.labels !== undefined;
  const labels = labelsGiven ? [...(options.labels as Label[])] : uniqueLabels(yTrue, yPred);
  const yType = targetType(yTrue, yPred);
  const labelSet = new Set<Label>(labels);
  const microIsAccuracy =
    (yType === 'multiclass' || yType === 'binary') && (!labelsGiven || uniqueLabels(yTrue, yPred).every((l) => labelSet.has(l)));

  let targetNames: string[];
  if (options.targetNames !== undefined) {
    targetNames = [...options.targetNames];
    if (targetNames.length !== labels.length) {
      if (labelsGiven) {
        warn(`labels size, ${labels.length}, does not match size of target_names, ${targetNames.length}`);
      } else {
        throw new Error(
          `Number of classes, ${labels.length}, does not match size of targetNames, ${targetNames.length}. ` +
            'Try specifying the labels parameter',
        );
      }
    }
  } else {
    targetNames = labels.map((l) => String(l));
  }

  const common = {
    labels,
    zeroDivision,
    sampleWeight: options.sampleWeight,
    unlistedLabels: options.unlistedLabels,
    onWarning: warn,
  };
  const per = computePrf(yTrue, yPred, { ...common, average: null }, ['precision', 'recall', 'f-score']) as PerLabelScores;
  // Python's zip: as many rows as the shorter of target names and labels.
  const nRows = Math.min(targetNames.length, per.labels.length);
  const supportTotal = per.support.reduce((a, b) => a + b, 0);

  const dict: ClassificationReportDict = {};
  const width = Math.max(...targetNames.map(codePointLength), codePointLength('weighted avg'), digits);
  const fixed = (x: number) => padStart(formatFixed(x, digits), 9);
  // Supports print as numpy ints, or as floats when sample weights are given, and also when no
  // sample at all is predicted right (multilabel_confusion_matrix's "pathological case" zeros).
  const floatSupport = options.sampleWeight !== undefined || !yTrue.some((t, i) => t === yPred[i]);
  const count = (x: number) => padStart(floatSupport ? formatPythonFloat(x) : formatPlain(x), 9);
  const line = (name: string, cells: string[]) => `${padStart(name, width)} ${cells.map((c) => ` ${c}`).join('')}\n`;
  let text = `${line(
    '',
    HEADERS.map((h) => padStart(h, 9)),
  )}\n`;
  for (let i = 0; i < nRows; i++) {
    const row = { precision: per.precision[i], recall: per.recall[i], 'f1-score': per.fscore[i], support: per.support[i] };
    dict[targetNames[i]] = row;
    text += line(targetNames[i], [fixed(row.precision), fixed(row.recall), fixed(row['f1-score']), count(row.support)]);
  }
  text += '\n';
  for (const average of ['micro', 'macro', 'weighted'] as const) {
    const heading = average === 'micro' && microIsAccuracy ? 'accuracy' : `${average} avg`;
    const avg = computePrf(yTrue, yPred, { ...common, average }, ['precision', 'recall', 'f-score']) as AveragedScores;
    const row = { precision: avg.precision, recall: avg.recall, 'f1-score': avg.fscore, support: supportTotal };
    if (heading === 'accuracy') {
      dict.accuracy = avg.fscore;
      text += line(heading, [padStart('', 9), padStart('', 9), fixed(avg.fscore), count(supportTotal)]);
    } else {
      dict[heading] = row;
      text += line(heading, [fixed(row.precision), fixed(row.recall), fixed(row['f1-score']), count(supportTotal)]);
    }
  }
  return { text, dict, warnings };
}
