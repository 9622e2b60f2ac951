import { checkTargets, type Label, uniqueLabels } from './labels.js';

export interface AccuracyOptions {
  /** true (default): the fraction correct; false: the number (or total weight) correct. */
  normalize?: boolean;
  sampleWeight?: readonly number[];
}

/** scikit-learn's `accuracy_score` for binary / multiclass targets. */
export function accuracyScore(yTrue: readonly Label[], yPred: readonly Label[], options: AccuracyOptions = {}): number {
  checkTargets(yTrue, yPred);
  uniqueLabels(yTrue, yPred);
  const { normalize = true, sampleWeight } = options;
  if (sampleWeight !== undefined && sampleWeight.length !== yTrue.length) {
    throw new Error(`sampleWeight has ${sampleWeight.length} values but yTrue has ${yTrue.length}: they must be the same length`);
  }
  let correct = 0;
  let total = 0;
  for (let i = 0; i < yTrue.length; i++) {
    const w = sampleWeight ? sampleWeight[i] : 1;
    if (yTrue[i] === yPred[i]) correct += w;
    total += w;
  }
  if (!normalize) return correct;
  if (sampleWeight && total === 0) {
    throw new Error("sampleWeight sums to zero: accuracy can't be normalized (pass normalize: false for the weighted count)");
  }
  return correct / total;
}
