// Runs the README's snippet as it is written there (against the sources) and checks what it prints.
import { join } from 'node:path';
import { runReadmeSnippet } from '@peft/core/testing';
import { expect, it } from 'vitest';

it('runs the README snippet', async () => {
  const run = await runReadmeSnippet(join(import.meta.dirname, '..', 'README.md'), { bindings: ['cuda'] });
  const cuda = run.bindings.cuda as { available: boolean; reason: string };
  const printed = run.lines.join('\n');
  expect(run.lines[0]).toBe(`CUDA available: ${cuda.available} (${cuda.reason})`);
  if (cuda.available) expect(printed).toMatch(/loss \d+\.\d{4} weight grad 3,4\nGEMMs: /);
  else expect(printed).toMatch(/^CUDA available: false \(.+\)$/);
});
