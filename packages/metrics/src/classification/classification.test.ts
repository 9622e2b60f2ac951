import { describe, expect, it } from 'vitest';
import { accuracyScore } from './accuracy.js';
import { classificationReport } from './classification-report.js';
import { confusionMatrix } from './confusion-matrix.js';
import { f1Score, fbetaScore, precisionRecallFscoreSupport, precisionScore, recallScore } from './prf.js';

describe('scikit-learn documentation examples', () => {
  it('accuracyScore', () => {
    expect(accuracyScore([0, 1, 2, 3], [0, 2, 1, 3])).toBe(0.5);
    expect(accuracyScore([0, 1, 2, 3], [0, 2, 1, 3], { normalize: false })).toBe(2);
  });

  it('precisionRecallFscoreSupport', () => {
    const yTrue = ['cat', 'dog', 'pig', 'cat', 'dog', 'pig'];
    const yPred = ['cat', 'pig', 'dog', 'cat', 'cat', 'dog'];
    const macro = precisionRecallFscoreSupport(yTrue, yPred, { average: 'macro' });
    expect(macro.precision).toBeCloseTo(0.2222222222222222, 15);
    expect(macro.recall).toBeCloseTo(0.3333333333333333, 15);
    expect(macro.fscore).toBeCloseTo(0.26666666666666666, 15);
    expect(macro.support).toBeNull();
    const micro = precisionRecallFscoreSupport(yTrue, yPred, { average: 'micro' });
    expect([micro.precision, micro.recall, micro.fscore]).toEqual([1 / 3, 1 / 3, 1 / 3]);
    const per = precisionRecallFscoreSupport(yTrue, yPred, { labels: ['pig', 'dog', 'cat'] });
    expect(per.precision).toEqual([0, 0, 2 / 3]);
    expect(per.support).toEqual([2, 2, 2]);
  });

  it('f1Score with every average', () => {
    const yTrue = [0, 1, 2, 0, 1, 2];
    const yPred = [0, 2, 1, 0, 0, 1];
    expect(f1Score(yTrue, yPred, { average: 'macro' })).toBeCloseTo(0.26666666666666666, 15);
    expect(f1Score(yTrue, yPred, { average: 'micro' })).toBeCloseTo(1 / 3, 15);
    expect(f1Score(yTrue, yPred, { average: 'weighted' })).toBeCloseTo(0.26666666666666666, 15);
    expect(f1Score(yTrue, yPred, { average: null })).toEqual([0.8, 0, 0]);
    expect(fbetaScore(yTrue, yPred, { average: 'macro', beta: 0.5 })).toBeCloseTo(0.23809523809523805, 15);
  });

  it('confusionMatrix with labels and normalisation', () => {
    const yTrue = ['cat', 'ant', 'cat', 'cat', 'ant', 'bird'];
    const yPred = ['ant', 'ant', 'cat', 'cat', 'ant', 'cat'];
    expect(confusionMatrix(yTrue, yPred, { labels: ['ant', 'bird', 'cat'] })).toEqual([
      [2, 0, 0],
      [0, 0, 1],
      [1, 0, 2],
    ]);
    expect(confusionMatrix([0, 1, 0, 1], [1, 1, 1, 0]).flat()).toEqual([0, 2, 1, 1]);
    expect(confusionMatrix([0, 0, 1], [0, 1, 1], { normalize: 'true' })).toEqual([
      [0.5, 0.5],
      [0, 1],
    ]);
  });

  it('classificationReport text, byte for byte', () => {
    const r = classificationReport([0, 1, 2, 2, 2], [0, 0, 2, 2, 1], { targetNames: ['class 0', 'class 1', 'class 2'] });
    expect(r.text).toBe(
      [
        '              precision    recall  f1-score   support',
        '',
        '     class 0       0.50      1.00      0.67         1',
        '     class 1       0.00      0.00      0.00         1',
        '     class 2       1.00      0.67      0.80         3',
        '',
        '    accuracy                           0.60         5',
        '   macro avg       0.50      0.56      0.49         5',
        'weighted avg       0.70      0.60      0.61         5',
        '',
      ].join('\n'),
    );
    expect(r.dict.accuracy).toBe(0.6);
    expect(r.dict['class 2']).toEqual({ precision: 1, recall: 2 / 3, 'f1-score': 0.8, support: 3 });
  });

  it('rounds ties half to even, as Python prints them', () => {
    // precision of label 1 is 1/8 = 0.125 exactly: Python prints 0.12, toFixed(2) would give 0.13.
    const yTrue = [1, 0, 0, 0, 0, 0, 0, 0];
    const yPred = [1, 1, 1, 1, 1, 1, 1, 1];
    const r = classificationReport(yTrue, yPred, { zeroDivision: 0 });
    expect(r.text.split('\n')[3]).toBe('           1       0.12      1.00      0.22         1');
  });
});

describe('zero division (scikit-learn ≥ 1.3 rules)', () => {
  // Label 2 is never predicted and never true; label 1 is true but never predicted.
  const yTrue = [0, 0, 1];
  const yPred = [0, 0, 0];
  const labels = [0, 1, 2];

  it("'warn' acts as 0 and reports each ill-defined metric once, without printing", () => {
    const seen: string[] = [];
    const r = precisionRecallFscoreSupport(yTrue, yPred, { labels, onWarning: (m) => seen.push(m) });
    expect(r.precision).toEqual([2 / 3, 0, 0]);
    expect(r.recall).toEqual([1, 0, 0]);
    expect(r.fscore).toEqual([0.8, 0, 0]);
    expect(r.warnings).toEqual([
      'Precision is ill-defined and being set to 0.0 in labels with no predicted samples. Use `zero_division` parameter to control this behavior.',
      'Recall is ill-defined and being set to 0.0 in labels with no true samples. Use `zero_division` parameter to control this behavior.',
      'F-score is ill-defined and being set to 0.0 in labels with no true nor predicted samples. Use `zero_division` parameter to control this behavior.',
    ]);
    expect(seen).toEqual(r.warnings);
    expect(precisionRecallFscoreSupport(yTrue, yPred, { labels, zeroDivision: 0 }).warnings).toEqual([]);
  });

  it('1: F is 1 only when both precision and recall are ill-defined', () => {
    const r = precisionRecallFscoreSupport(yTrue, yPred, { labels, zeroDivision: 1 });
    expect(r.precision).toEqual([2 / 3, 1, 1]);
    expect(r.recall).toEqual([1, 0, 1]);
    // label 1: precision ill-defined (1) but recall 0 → F = 2·0/(0+1+0) = 0, not from P and R.
    expect(r.fscore).toEqual([0.8, 0, 1]);
  });

  it('NaN: scores are NaN and averages skip them', () => {
    const r = precisionRecallFscoreSupport(yTrue, yPred, { labels, zeroDivision: Number.NaN });
    expect(r.precision).toEqual([2 / 3, Number.NaN, Number.NaN]);
    expect(r.recall).toEqual([1, 0, Number.NaN]);
    expect(r.fscore).toEqual([0.8, 0, Number.NaN]);
    const macro = precisionRecallFscoreSupport(yTrue, yPred, { labels, zeroDivision: Number.NaN, average: 'macro' });
    expect(macro.precision).toBeCloseTo(2 / 3, 15);
    expect(macro.recall).toBe(0.5);
    expect(macro.fscore).toBe(0.4);
    expect(Number.isNaN(precisionScore([0, 0], [0, 0], { average: 'binary', zeroDivision: Number.NaN }))).toBe(true);
  });

  it('weighted average with no support anywhere falls back to the plain mean', () => {
    // labels exclude every true label: weights are all 0 (sklearn ≥ 1.3 `_nanaverage`).
    const r = precisionRecallFscoreSupport([0, 0], [1, 2], {
      labels: [1, 2, 3],
      average: 'weighted',
      zeroDivision: 1,
      unlistedLabels: 'ignore',
    });
    expect(r.precision).toBeCloseTo(1 / 3, 15);
    expect(r.recall).toBe(1);
    expect(r.fscore).toBeCloseTo(1 / 3, 15);
  });

  it('beta 0 is precision and beta Infinity is recall', () => {
    const yt = [1, 1, 0, 0];
    const yp = [1, 0, 1, 1];
    expect(fbetaScore(yt, yp, { beta: 0 })).toBe(precisionScore(yt, yp));
    expect(fbetaScore(yt, yp, { beta: Number.POSITIVE_INFINITY })).toBe(recallScore(yt, yp));
    expect(() => fbetaScore(yt, yp, { beta: -1 })).toThrow(/beta is -1/);
  });
});

describe('input errors name the values', () => {
  it('lengths differ', () => {
    expect(() => f1Score([0, 1], [0, 1, 1])).toThrow('yTrue has 2 values but yPred has 3');
  });

  it('a predicted label outside `labels` is an error unless unlistedLabels is "ignore"', () => {
    expect(() => f1Score([0, 1, 2], [0, 1, 7], { average: 'macro', labels: [0, 1, 2] })).toThrow(
      'label set mismatch: yPred has [7], not in labels [0, 1, 2]',
    );
    expect(() => confusionMatrix(['a', 'b'], ['a', 'c'], { labels: ['a', 'b'] })).toThrow(/yPred has \["c"\]/);
    // scikit-learn leaves it out: the 7 only costs label 2 its recall.
    expect(f1Score([0, 1, 2], [0, 1, 7], { average: null, labels: [0, 1, 2], unlistedLabels: 'ignore' })).toEqual([1, 1, 0]);
  });

  it('mixed label kinds, continuous values, binary on multiclass, bad zeroDivision', () => {
    expect(() => accuracyScore([0, 'a'], [0, 'a'])).toThrow(/strings \["a"\], numbers \[0\]/);
    expect(() => f1Score([0, 'a'], [0, 'a'], { average: 'macro' })).toThrow(/Mix of label input types/);
    expect(() => accuracyScore([0.5], [0.5])).toThrow(/yTrue\[0\] is 0.5/);
    expect(() => f1Score([0, 1, 2], [0, 1, 2])).toThrow(/Target is multiclass .* but average='binary'/);
    expect(() => f1Score(['a', 'b'], ['a', 'b'])).toThrow(/pos_label=1 is not a valid label/);
    expect(f1Score(['a', 'b'], ['a', 'b'], { posLabel: 'b' })).toBe(1);
    expect(() => f1Score([0, 1], [0, 1], { zeroDivision: 2 })).toThrow(/zeroDivision is 2/);
  });
});
