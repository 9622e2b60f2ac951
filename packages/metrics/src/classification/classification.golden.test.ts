import { describe, expect, it } from 'vitest';
import { expectAllClose, expectClose, readFixture } from '../test-helpers.js';
import { accuracyScore } from './accuracy.js';
import { classificationReport } from './classification-report.js';
import { confusionMatrix } from './confusion-matrix.js';
import type { Label } from './labels.js';
import { type Average, f1Score, fbetaScore, precisionRecallFscoreSupport, precisionScore, recallScore } from './prf.js';

type N = number | null;
interface Case {
  id: number;
  yTrue: Label[];
  yPred: Label[];
  labels: Label[] | null;
  unlistedLabels: 'ignore' | null;
  average: Average;
  zeroDivision: 0 | 1 | 'warn';
  beta: number;
  sampleWeight: number[] | null;
  posLabel: Label | null;
  accuracy: N;
  accuracyCount: N;
  prfs?: { precision: N | N[]; recall: N | N[]; fscore: N | N[]; support: N[] | null };
  scores?: Record<'precision' | 'recall' | 'f1' | 'fbeta', N | N[]>;
  prfsError?: string;
  cmNormalize: 'true' | 'pred' | 'all' | null;
  confusionMatrix?: N[][];
  confusionMatrixError?: string;
  report: {
    digits: number;
    targetNames: string[] | null;
    text?: string | null;
    dict?: Record<string, N | Record<string, N>>;
    error?: string;
  };
}

const fixture = readFixture<{ sklearn: string; cases: Case[] }>('classification.json');

function check(actual: number | number[], expected: N | N[], where: string): void {
  if (Array.isArray(expected)) expectAllClose(actual as number[], expected, where);
  else expectClose(actual as number, expected, where);
}

describe(`classification metrics against scikit-learn ${fixture.sklearn} goldens`, () => {
  it('has enough cases', () => {
    expect(fixture.cases.length).toBeGreaterThanOrEqual(1000);
  });

  it('accuracyScore', () => {
    for (const c of fixture.cases) {
      const sampleWeight = c.sampleWeight ?? undefined;
      expectClose(accuracyScore(c.yTrue, c.yPred, { sampleWeight }), c.accuracy, `case ${c.id}`);
      expectClose(accuracyScore(c.yTrue, c.yPred, { sampleWeight, normalize: false }), c.accuracyCount, `case ${c.id}`);
    }
  });

  it('precisionRecallFscoreSupport and the single scores', () => {
    let compared = 0;
    for (const c of fixture.cases) {
      const opts = {
        labels: c.labels ?? undefined,
        unlistedLabels: c.unlistedLabels ?? undefined,
        average: c.average,
        zeroDivision: c.zeroDivision,
        sampleWeight: c.sampleWeight ?? undefined,
        posLabel: c.posLabel ?? undefined,
      };
      const where = `case ${c.id}`;
      if (c.prfsError !== undefined) {
        expect(() => precisionRecallFscoreSupport(c.yTrue, c.yPred, { ...opts, beta: c.beta } as never), where).toThrow();
        continue;
      }
      const r = precisionRecallFscoreSupport(c.yTrue, c.yPred, { ...opts, beta: c.beta } as never) as {
        precision: number | number[];
        recall: number | number[];
        fscore: number | number[];
        support: number[] | null;
      };
      const e = c.prfs as NonNullable<Case['prfs']>;
      check(r.precision, e.precision, `${where} precision`);
      check(r.recall, e.recall, `${where} recall`);
      check(r.fscore, e.fscore, `${where} fscore`);
      if (e.support === null) expect(r.support).toBeNull();
      else expectAllClose(r.support as number[], e.support, `${where} support`);
      const s = c.scores as NonNullable<Case['scores']>;
      check(precisionScore(c.yTrue, c.yPred, opts), s.precision, `${where} precisionScore`);
      check(recallScore(c.yTrue, c.yPred, opts), s.recall, `${where} recallScore`);
      check(f1Score(c.yTrue, c.yPred, opts), s.f1, `${where} f1Score`);
      check(fbetaScore(c.yTrue, c.yPred, { ...opts, beta: c.beta }), s.fbeta, `${where} fbetaScore`);
      compared++;
    }
    expect(compared).toBeGreaterThan(800);
  });

  it('confusionMatrix', () => {
    for (const c of fixture.cases) {
      const opts = {
        labels: c.labels ?? undefined,
        unlistedLabels: c.unlistedLabels ?? undefined,
        sampleWeight: c.sampleWeight ?? undefined,
        normalize: c.cmNormalize,
      };
      if (c.confusionMatrixError !== undefined) {
        expect(() => confusionMatrix(c.yTrue, c.yPred, opts), `case ${c.id}`).toThrow();
        continue;
      }
      const cm = confusionMatrix(c.yTrue, c.yPred, opts);
      const e = c.confusionMatrix as N[][];
      expect(cm.length).toBe(e.length);
      e.forEach((row, i) => {
        expectAllClose(cm[i], row, `case ${c.id} row ${i}`);
      });
    }
  });

  it('classificationReport: text byte-identical, dict to 1e-12', () => {
    let texts = 0;
    for (const c of fixture.cases) {
      const where = `case ${c.id}`;
      const opts = {
        labels: c.labels ?? undefined,
        unlistedLabels: c.unlistedLabels ?? undefined,
        targetNames: c.report.targetNames ?? undefined,
        digits: c.report.digits,
        zeroDivision: c.zeroDivision,
      };
      if (c.report.error !== undefined) {
        expect(() => classificationReport(c.yTrue, c.yPred, opts), where).toThrow();
        continue;
      }
      const r = classificationReport(c.yTrue, c.yPred, opts);
      if (typeof c.report.text === 'string') {
        expect(r.text, where).toBe(c.report.text);
        texts++;
      }
      if (c.report.dict) {
        expect(Object.keys(r.dict).sort(), where).toEqual(Object.keys(c.report.dict).sort());
        for (const [k, v] of Object.entries(c.report.dict)) {
          if (v === null || typeof v === 'number') expectClose(r.dict[k] as number, v, `${where} ${k}`);
          else
            for (const [m, x] of Object.entries(v))
              expectClose((r.dict[k] as unknown as Record<string, number>)[m], x, `${where} ${k}.${m}`);
        }
      }
    }
    expect(texts).toBeGreaterThan(900);
  });
});
