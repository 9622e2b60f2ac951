// The README snippet, verbatim apart from the import paths (the README imports the package by name).
import { expect, it } from 'vitest';
import { documentsToSentences, formatLivedoor, nerExample, splitLivedoor } from './index.js';
import { readLivedoor, readPubTator } from './node/index.js';

it('runs the README snippet', async () => {
  // Study A: livedoor news, straight from the archive (paths relative to the repository root)
  const corpus = await readLivedoor('packages/datasets/fixtures/livedoor/ldcc-fixture.tar.gz');
  const { train, validation, test } = splitLivedoor(corpus.examples, { seed: 42 });
  const input = formatLivedoor(train[0]!, 0); // 'タイトル: …\n本文: …\nラベル: '

  // Study B: BC5CDR, PubTator → sentences → prompt / answer
  const { documents } = await readPubTator('packages/datasets/fixtures/bc5cdr/CDR_TrainingSet.PubTator.txt');
  const { sentences } = documentsToSentences(documents);
  const { prompt, answer } = nerExample(sentences[0]!, { method: 'tagging', label: 'Chemical' });

  expect(corpus.labels.length).toBe(9);
  expect([train.length, validation.length, test.length]).toEqual([109, 13, 13]);
  expect(input.startsWith('タイトル: ')).toBe(true);
  expect(prompt).toBe('Input: Cisplatin - induced nephrotoxicity in aged rats .\nAnswer:');
  expect(answer).toBe(' @@Cisplatin## - induced nephrotoxicity in aged rats .');
});
