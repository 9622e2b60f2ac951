import { checkListed, checkTargets, type Label, showLabels, type UnlistedLabels, uniqueLabels } from './labels.js';

export interface ConfusionMatrixOptions {
  /** Row / column order; default sorted yTrue ∪ yPred. */
  labels?: readonly Label[];
  /** Divide by row sums ('true'), column sums ('pred') or the total ('all'); 0/0 gives 0. */
  normalize?: 'true' | 'pred' | 'all' | null;
  sampleWeight?: readonly number[];
  /** With `labels`: values outside them are an error (default) or dropped (`'ignore'`, scikit-learn's behaviour). */
  unlistedLabels?: UnlistedLabels;
}

/** scikit-learn's `confusion_matrix`: `C[i][j]` counts samples of true label i predicted as j. */
export function confusionMatrix(yTrue: readonly Label[], yPred: readonly Label[], options: ConfusionMatrixOptions = {}): number[][] {
  checkTargets(yTrue, yPred);
  const { normalize = null, sampleWeight } = options;
  if (normalize !== null && normalize !== 'true' && normalize !== 'pred' && normalize !== 'all') {
    throw new Error(`normalize is ${JSON.stringify(normalize)}: it must be one of 'true', 'pred', 'all', null`);
  }
  let labels: Label[];
  if (options.labels === undefined) {
    labels = uniqueLabels(yTrue, yPred);
  } else {
    labels = [...options.labels];
    if (labels.length === 0) throw new Error("'labels' should contain at least one label");
    checkListed(labels, yTrue, yPred, options.unlistedLabels ?? 'error');
    if (yTrue.length === 0) return labels.map(() => labels.map(() => 0));
    const present = new Set(yTrue);
    if (labels.every((l) => !present.has(l))) {
      throw new Error(
        `At least one label specified must be in yTrue: labels ${showLabels(labels)}, yTrue has ${showLabels(uniqueLabels(yTrue))}`,
      );
    }
  }
  if (sampleWeight !== undefined && sampleWeight.length !== yTrue.length) {
    throw new Error(`sampleWeight has ${sampleWeight.length} values but yTrue has ${yTrue.length}: they must be the same length`);
  }
  const n = labels.length;
  const index = new Map<Label, number>();
  labels.forEach((l, i) => {
    index.set(l, i);
  });
  const cm = labels.map(() => new Array<number>(n).fill(0));
  for (let s = 0; s < yTrue.length; s++) {
    const i = index.get(yTrue[s]);
    const j = index.get(yPred[s]);
    if (i === undefined || j === undefined) continue;
    cm[i][j] += sampleWeight ? sampleWeight[s] : 1;
  }
  if (normalize === null) return cm;
  const safe = (x: number) => (Number.isNaN(x) ? 0 : x);
  if (normalize === 'true') {
    return cm.map((row) => {
      const sum = row.reduce((a, b) => a + b, 0);
      return row.map((v) => safe(v / sum));
    });
  }
  if (normalize === 'pred') {
    const colSums = labels.map((_, j) => cm.reduce((a, row) => a + row[j], 0));
    return cm.map((row) => row.map((v, j) => safe(v / colSums[j])));
  }
  const total = cm.reduce((a, row) => a + row.reduce((x, y) => x + y, 0), 0);
  return cm.map((row) => row.map((v) => safe(v / total)));
}
