// Runs the README's snippet as it is written there (against the sources) and checks what it did.
import { join } from 'node:path';
import { runReadmeSnippet } from '@peft/core/testing';
import { expect, it } from 'vitest';
import type { SequenceClassifier } from './index.js';

it('runs the README snippet', async () => {
  const run = await runReadmeSnippet(join(import.meta.dirname, '..', 'README.md'), {
    bindings: ['names', 'classifier', 'model', 'generated'],
  });
  const { names, classifier, model, generated } = run.bindings as {
    names: string[];
    classifier: SequenceClassifier;
    model: SequenceClassifier['model'];
    generated: number[][];
  };
  expect(names[0]).toBe('gpt_neox.embed_in.weight');
  expect(names.at(-1)).toBe('score.weight');
  expect(classifier.score.weight.grad?.shape).toEqual([3, 32]);
  expect(model.base.getParameter('embed_in.weight').grad).toBeNull();
  expect(generated).toHaveLength(2);
  expect(generated.map((row) => row.length).every((n) => n <= 4)).toBe(true);
  expect(run.lines).toHaveLength(4);
  expect(run.lines[0]).toMatch(/^gpt_neox\.embed_in\.weight … score\.weight \| loss \d+\.\d{4} \| grad 3,32$/);
  expect(run.lines[1]).toMatch(/^predicted labels [0-2],[0-2]$/);
  expect(run.lines[2]).toMatch(/^answer loss \d+\.\d{4}$/);
  expect(run.lines[3]).toBe(`generated ${JSON.stringify(generated)} | no tensor left behind: true`);
  expect(run.calls.at(-1)?.at(-1)).toBe(true); // "no tensor left behind: true"
});

it('runs the README tensor-input snippet', async () => {
  const run = await runReadmeSnippet(join(import.meta.dirname, '..', 'README.md'), { index: 1 });
  expect(run.lines).toEqual([
    'inputIds attentionMask positionIds poolIndex labels | labels 2,0,-100,-100 | pooled at 2,19,32,48',
    'same loss: true',
    'target rows 2,3,4,0,0,0,0,0 | targets 20,21,0,-100,-100,-100,-100,-100',
    'same answer loss: true',
  ]);
});
