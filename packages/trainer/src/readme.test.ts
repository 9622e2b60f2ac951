// Runs the README's ```js blocks as they are written there (only '@peft/trainer' is pointed at
// this source folder), and checks what it prints.
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { expect, it, vi } from 'vitest';

const here = dirname(fileURLToPath(import.meta.url));

/** Runs the README's `index`-th ```js block (only '@peft/trainer' pointed at this source folder); returns what it printed. */
async function runSnippet(index: number, mustContain: string): Promise<string[]> {
  const readme = readFileSync(join(here, '..', 'README.md'), 'utf8');
  const snippet = [...readme.matchAll(/```js\n([\s\S]*?)```/g)][index]![1]!;
  expect(snippet).toContain(mustContain);
  const file = join(here, `.readme-snippet-${index}-${process.pid}.mjs`);
  writeFileSync(file, snippet.replace("from '@peft/trainer'", "from './index.ts'"));
  const log = vi.spyOn(console, 'log').mockImplementation(() => {});
  try {
    await import(/* @vite-ignore */ file);
    return log.mock.calls.map((args) => args.join(' '));
  } finally {
    log.mockRestore();
    rmSync(file, { force: true });
  }
}

it('runs the README snippet', async () => {
  const lines = await runSnippet(0, 'await train(task');
  expect(lines).toHaveLength(3);
  const scores = lines[0]!.replace('validation macro-F1 by epoch: ', '').split(' → ').map(Number);
  expect(scores).toHaveLength(5);
  expect(Math.max(...scores.slice(1))).toBeGreaterThan(scores[0]! + 0.2);
  expect(lines[1]).toMatch(/^best epoch [1-4] \| test \{"accuracy":0\.\d+,"f1":0\.\d+\}$/);
  expect(lines[2]).toBe('run folder: adapter/trainable.safetensors, config.json, log.csv, test-metrics.json, val-metrics.json');
});

it('runs the README snippet of TrainingStep', async () => {
  const lines = await runSnippet(1, 'new TrainingStep(');
  expect(lines).toHaveLength(4);
  lines.forEach((l, i) => {
    expect(l).toMatch(new RegExp(`^step ${i + 1} \\(eager\\): loss \\d\\.\\d{4}, grad norm \\d+\\.\\d{4}, clipped ×[01]\\.\\d{3}$`));
  });
  const losses = lines.map((l) => Number(l.match(/loss (\S+),/)![1]));
  expect(losses[3]!).toBeLessThan(losses[0]!);
});
