// Runs the README's snippet as it is written there (against the sources): its
// `expression; // <value>` lines are checked by the runner, its bindings and output here.
import { join } from 'node:path';
import { runReadmeSnippet } from '@peft/core/testing';
import { expect, it } from 'vitest';
import type { EntityScoresAveraged, ParseResult, Span } from './index.js';

it('README snippet runs', async () => {
  const run = await runReadmeSnippet(join(import.meta.dirname, '..', 'README.md'), { bindings: ['f1', 'gold', 'parsed', 'scores'] });
  const { f1, gold, parsed, scores } = run.bindings as { f1: number; gold: Span[]; parsed: ParseResult; scores: EntityScoresAveraged };
  // Study A: macro F1 over all labels, zero_division = 0
  expect(f1).toBeCloseTo(0.6, 12);
  // Study B: formatTagged's markers and the exact-span F1 of the parsed generation
  expect(run.claims.map((c) => c.actual)).toEqual(["@@Mesna## significantly reduces @@IFO## 's genotoxicity", 1]);
  expect(gold).toEqual([
    { type: 'Chemical', start: 0, end: 1 },
    { type: 'Chemical', start: 3, end: 4 },
  ]);
  expect(parsed.spans).toEqual(gold);
  // seqeval-style entity F1 on BIO tags
  expect(scores.f1).toBe(0);
  expect(run.lines).toEqual([`0.6000 ${JSON.stringify(gold)} 1 0`]);
});
