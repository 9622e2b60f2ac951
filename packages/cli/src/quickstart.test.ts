// Runs the repository README's quick start (its first ```js block) as it is written there, against
// the sources: from a scratch folder holding the bundled tiny GPT-NeoX at the path the snippet
// names. scripts/pack-check.mjs runs the same block against the packed packages.
import { mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect, it, vi } from 'vitest';

const root = join(import.meta.dirname, '..', '..', '..');

it('the README quick start trains, saves and reloads a classifier in at most 15 lines', async () => {
  const readme = readFileSync(join(root, 'README.md'), 'utf8');
  const snippet = readme.match(/```js\n([\s\S]*?)```/)![1]!;
  const lines = snippet.split('\n').filter((l) => l.trim() !== '');
  expect(lines.length).toBeLessThanOrEqual(15);
  expect(snippet).toContain("'fixtures/models/tiny-gpt-neox'");
  // The module sits beside this test so that '@peft/*' resolve to the workspace sources.
  const file = join(import.meta.dirname, `.quickstart-${process.pid}.mjs`);
  writeFileSync(file, snippet);
  const work = mkdtempSync(join(tmpdir(), 'peft-quickstart-'));
  mkdirSync(join(work, 'fixtures', 'models'), { recursive: true });
  symlinkSync(join(root, 'fixtures', 'models', 'tiny-gpt-neox'), join(work, 'fixtures', 'models', 'tiny-gpt-neox'));
  const cwd = process.cwd();
  const log = vi.spyOn(console, 'log').mockImplementation(() => {});
  try {
    process.chdir(work);
    await import(/* @vite-ignore */ file);
    expect(log.mock.calls).toEqual([[['positive', 'negative']]]);
    const config = JSON.parse(readFileSync(join(work, 'out', 'classifier', 'adapter_config.json'), 'utf8'));
    expect(config).toMatchObject({
      task_type: 'SEQ_CLS',
      base_model_name_or_path: 'fixtures/models/tiny-gpt-neox',
      id2label: { 0: 'negative', 1: 'positive' },
      modules_to_save: ['classifier', 'score'],
    });
  } finally {
    log.mockRestore();
    process.chdir(cwd);
    rmSync(file, { force: true });
    rmSync(work, { recursive: true, force: true });
  }
});
