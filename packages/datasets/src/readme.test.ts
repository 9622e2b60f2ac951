// Runs the README's snippets as they are written there (against the sources): the ```js block that
// scripts/pack-check.mjs also runs, and the ```ts block that reads the fixture files.
import { join } from 'node:path';
import { runReadmeSnippet } from '@peft/core/testing';
import { expect, it } from 'vitest';
import type { LivedoorCorpus, LivedoorExample } from './index.js';

const readme = join(import.meta.dirname, '..', 'README.md');
const root = join(import.meta.dirname, '..', '..', '..');

it('runs the README snippet', async () => {
  const run = await runReadmeSnippet(readme);
  expect(run.lines).toEqual([
    // Study A: NFKC, trimmed lines, blank lines dropped; template 2 is title and body only
    JSON.stringify('SMAX新機種\n本文の1行目。\n2行目'),
    // Study B: every entity type tagged at once
    "[Chemical]Mesna[/Chemical] significantly reduces [Chemical]IFO[/Chemical] 's [Disease]genotoxicity[/Disease]",
  ]);
});

it('runs the README snippet with files on disk', async () => {
  const run = await runReadmeSnippet(readme, {
    lang: 'ts',
    cwd: root, // the snippet's paths are relative to the repository root
    bindings: ['corpus', 'train', 'validation', 'test', 'input', 'prompt', 'answer'],
  });
  const { corpus, train, validation, test, input, prompt, answer } = run.bindings as {
    corpus: LivedoorCorpus;
    train: LivedoorExample[];
    validation: LivedoorExample[];
    test: LivedoorExample[];
    input: string;
    prompt: string;
    answer: string;
  };
  expect(corpus.labels.length).toBe(9);
  expect([train.length, validation.length, test.length]).toEqual([109, 13, 13]);
  expect(input.startsWith('タイトル: ')).toBe(true);
  expect(input.endsWith('\nラベル: ')).toBe(true);
  expect(prompt).toBe('Input: Cisplatin - induced nephrotoxicity in aged rats .\nAnswer:');
  expect(answer).toBe(' @@Cisplatin## - induced nephrotoxicity in aged rats .');
  // The values the README's comments show are the ones the snippet gives.
  expect(run.block.code).toContain(`// prompt: '${prompt.replace('\n', '\\n')}'`);
  expect(run.block.code).toContain(`// answer: '${answer}'`);
});
