import { describe, expect, it } from 'vitest';
import { entityClassificationReport, entityPrecisionRecallF1 } from './entity-metrics.js';
import { getEntities } from './get-entities.js';
import { spanScores } from './span-scores.js';

describe('getEntities', () => {
  it("default mode: seqeval's chunking (ends exclusive here, inclusive in seqeval)", () => {
    expect(getEntities(['B-PER', 'I-PER', 'O', 'B-LOC'])).toEqual([
      { type: 'PER', start: 0, end: 2 },
      { type: 'LOC', start: 3, end: 4 },
    ]);
    // Lenient: an I- after O starts a chunk, a type change ends one.
    expect(getEntities(['I-PER', 'I-PER', 'I-LOC', 'O'])).toEqual([
      { type: 'PER', start: 0, end: 2 },
      { type: 'LOC', start: 2, end: 3 },
    ]);
    expect(getEntities(['S-PER', 'B-LOC', 'E-LOC', 'O'])).toEqual([
      { type: 'PER', start: 0, end: 1 },
      { type: 'LOC', start: 1, end: 3 },
    ]);
  });

  it('default mode reads BILOU L- / U- as E- / S-, and suffix style', () => {
    expect(getEntities(['U-PER', 'U-PER', 'B-LOC', 'L-LOC'])).toEqual([
      { type: 'PER', start: 0, end: 1 },
      { type: 'PER', start: 1, end: 2 },
      { type: 'LOC', start: 2, end: 4 },
    ]);
    expect(getEntities(['PER-B', 'PER-I', 'O'], { suffix: true })).toEqual([{ type: 'PER', start: 0, end: 2 }]);
  });

  it('sentences are flattened with an O between them, as seqeval does', () => {
    expect(getEntities([['B-PER'], ['I-PER']])).toEqual([
      { type: 'PER', start: 0, end: 1 },
      { type: 'PER', start: 2, end: 3 },
    ]);
  });

  it('warns about tags that are not NE tags, only when asked', () => {
    const seen: string[] = [];
    getEntities(['X-PER', 'O'], { onWarning: (m) => seen.push(m) });
    expect(seen).toEqual(['X-PER seems not to be NE tag.']);
  });

  it('strict mode keeps only well-formed chunks of the scheme', () => {
    const tags = ['I-PER', 'I-PER', 'O', 'B-LOC', 'I-LOC', 'B-PER'];
    expect(getEntities(tags, { mode: 'strict', scheme: 'IOB2' })).toEqual([
      { type: 'LOC', start: 3, end: 5 },
      { type: 'PER', start: 5, end: 6 },
    ]);
    expect(getEntities(['B-PER', 'I-PER', 'E-PER', 'S-LOC', 'B-ORG'], { mode: 'strict', scheme: 'IOBES' })).toEqual([
      { type: 'PER', start: 0, end: 3 },
      { type: 'LOC', start: 3, end: 4 },
    ]);
    expect(getEntities(['B-PER', 'L-PER', 'U-LOC'], { mode: 'strict', scheme: 'BILOU' })).toEqual([
      { type: 'PER', start: 0, end: 2 },
      { type: 'LOC', start: 2, end: 3 },
    ]);
  });

  it('strict mode rejects prefixes the scheme does not allow, and needs a scheme', () => {
    expect(() => getEntities(['S-PER'], { mode: 'strict', scheme: 'IOB2' })).toThrow('Invalid token is found: S-PER');
    expect(() => getEntities(['X-PER'], { mode: 'strict', scheme: 'IOB2' })).toThrow(/prefix "X"/);
    expect(() => getEntities(['B-PER'], { mode: 'strict' })).toThrow(/strict mode needs a scheme/);
  });
});

describe('entityPrecisionRecallF1 (seqeval examples)', () => {
  const yTrue = [
    ['O', 'O', 'O', 'B-MISC', 'I-MISC', 'I-MISC', 'O'],
    ['B-PER', 'I-PER', 'O'],
  ];
  const yPred = [
    ['O', 'O', 'B-MISC', 'I-MISC', 'I-MISC', 'I-MISC', 'O'],
    ['B-PER', 'I-PER', 'O'],
  ];

  it('averages and per type', () => {
    for (const average of ['micro', 'macro', 'weighted'] as const) {
      expect(entityPrecisionRecallF1(yTrue, yPred, { average })).toMatchObject({ precision: 0.5, recall: 0.5, f1: 0.5, support: 2 });
    }
    const per = entityPrecisionRecallF1(yTrue, yPred, { average: null });
    expect(per.types).toEqual(['MISC', 'PER']);
    expect(per.f1).toEqual([0, 1]);
    expect(per.support).toEqual([1, 1]);
  });

  it('f1 example with micro/macro', () => {
    const t = [
      ['O', 'O', 'B-MISC', 'I-MISC', 'B-MISC', 'O', 'O'],
      ['B-PER', 'I-PER', 'O'],
    ];
    const p = [
      ['O', 'O', 'B-MISC', 'I-MISC', 'B-MISC', 'I-MISC', 'O'],
      ['B-PER', 'I-PER', 'O'],
    ];
    expect(entityPrecisionRecallF1(t, p).f1).toBeCloseTo(0.6666666666666666, 15);
    expect(entityPrecisionRecallF1(t, p, { average: 'macro' }).f1).toBe(0.75);
  });

  it('report text', () => {
    expect(entityClassificationReport(yTrue, yPred).text).toBe(
      [
        '              precision    recall  f1-score   support',
        '',
        '        MISC       0.00      0.00      0.00         1',
        '         PER       1.00      1.00      1.00         1',
        '',
        '   micro avg       0.50      0.50      0.50         2',
        '   macro avg       0.50      0.50      0.50         2',
        'weighted avg       0.50      0.50      0.50         2',
        '',
      ].join('\n'),
    );
  });

  it('names inconsistent lengths', () => {
    expect(() => entityPrecisionRecallF1([['O', 'O']], [['O']])).toThrow('sentence 0 has 2 true tags but 1 predicted');
  });
});

describe('spanScores', () => {
  it('exact span and type matches, per type, micro and macro', () => {
    const gold = [
      [
        { type: 'Chemical', start: 0, end: 1 },
        { type: 'Chemical', start: 3, end: 4 },
        { type: 'Disease', start: 5, end: 6 },
      ],
      [{ type: 'Disease', start: 1, end: 3 }],
    ];
    const pred = [
      [
        { type: 'Chemical', start: 0, end: 1 },
        { type: 'Disease', start: 3, end: 4 },
        { type: 'Disease', start: 5, end: 6 },
      ],
      [{ type: 'Disease', start: 1, end: 2 }],
    ];
    const s = spanScores(gold, pred);
    expect(s.types).toEqual(['Chemical', 'Disease']);
    expect(s.perType.Chemical).toEqual({ precision: 1, recall: 0.5, f1: 2 / 3, support: 2, predicted: 1, tp: 1 });
    expect(s.perType.Disease).toMatchObject({ precision: 1 / 3, recall: 0.5, tp: 1, predicted: 3, support: 2 });
    expect(s.micro).toMatchObject({ precision: 0.5, recall: 0.5, f1: 0.5, support: 4, predicted: 4, tp: 2 });
    expect(s.macro.f1).toBeCloseTo((2 / 3 + 0.4) / 2, 15);
  });

  it('matches the tag-based metrics on the same entities', () => {
    const t = [
      ['B-PER', 'I-PER', 'O', 'B-LOC'],
      ['O', 'B-MISC'],
    ];
    const p = [
      ['B-PER', 'O', 'O', 'B-LOC'],
      ['O', 'B-MISC'],
    ];
    const spans = (seqs: string[][]) => seqs.map((s) => getEntities(s));
    const a = spanScores(spans(t), spans(p));
    const b = entityPrecisionRecallF1(t, p, { average: 'micro' });
    expect([a.micro.precision, a.micro.recall, a.micro.f1]).toEqual([b.precision, b.recall, b.f1]);
  });
});
