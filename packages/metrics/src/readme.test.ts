import { expect, it } from 'vitest';
// The README's first snippet, verbatim below (imports from the package there).
import { entityPrecisionRecallF1, f1Score, formatTagged, parseTagged, spanScores } from './index.js';

it('README snippet runs', () => {
  // Study A: macro F1 over all labels, zero_division = 0 (scikit-learn semantics)
  const f1 = f1Score([0, 1, 2, 2], [0, 2, 2, 2], { average: 'macro', labels: [0, 1, 2], zeroDivision: 0 });
  expect(f1).toBeCloseTo(0.6, 12);

  // Study B: parse a generation back onto the input tokens, then score exact spans
  const tokens = ['Mesna', 'significantly', 'reduces', 'IFO', "'s", 'genotoxicity'];
  const gold = [
    { type: 'Chemical', start: 0, end: 1 },
    { type: 'Chemical', start: 3, end: 4 },
  ];
  expect(formatTagged(tokens, gold, { format: 'markers', label: 'Chemical' })).toBe(
    "@@Mesna## significantly reduces @@IFO## 's genotoxicity",
  );
  const parsed = parseTagged("@@Mesna## significantly reduces @@IFO##'s genotoxicity", tokens, { format: 'markers', label: 'Chemical' });
  expect(parsed.spans).toEqual(gold);
  expect(spanScores([gold], [parsed.spans]).micro.f1).toBe(1);

  // seqeval-style entity F1 on BIO tags
  const scores = entityPrecisionRecallF1([['B-PER', 'I-PER', 'O']], [['B-PER', 'O', 'O']], { average: 'micro' });
  expect(scores.f1).toBe(0);
});
