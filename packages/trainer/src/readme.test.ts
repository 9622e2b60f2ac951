// Runs the README's ```js blocks as they are written there (against the sources) and checks what
// they print.
import { join } from 'node:path';
import { runReadmeSnippet } from '@peft/core/testing';
import { expect, it } from 'vitest';

const readme = join(import.meta.dirname, '..', 'README.md');

it('runs the README snippet', async () => {
  const run = await runReadmeSnippet(readme, { index: 0 });
  expect(run.block.code).toContain('await train(task');
  const { lines } = run;
  expect(lines).toHaveLength(3);
  const scores = lines[0]!.replace('validation macro-F1 by epoch: ', '').split(' → ').map(Number);
  expect(scores).toHaveLength(5);
  expect(Math.max(...scores.slice(1))).toBeGreaterThan(scores[0]! + 0.2);
  expect(lines[1]).toMatch(/^best epoch [1-4] \| test \{"accuracy":0\.\d+,"f1":0\.\d+\}$/);
  expect(lines[2]).toBe('run folder: adapter/trainable.safetensors, config.json, log.csv, test-metrics.json, val-metrics.json');
});

it('runs the README snippet of TrainingStep', async () => {
  const run = await runReadmeSnippet(readme, { index: 1 });
  expect(run.block.code).toContain('new TrainingStep(');
  const { lines } = run;
  expect(lines).toHaveLength(4);
  lines.forEach((l, i) => {
    expect(l).toMatch(new RegExp(`^step ${i + 1} \\(eager\\): loss \\d\\.\\d{4}, grad norm \\d+\\.\\d{4}, clipped ×[01]\\.\\d{3}$`));
  });
  const losses = lines.map((l) => Number(l.match(/loss (\S+),/)![1]));
  expect(losses[3]!).toBeLessThan(losses[0]!);
});
