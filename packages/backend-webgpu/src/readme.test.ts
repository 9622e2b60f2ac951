// Runs the README's snippet as it is written there (against the sources) and checks what it prints.
import { join } from 'node:path';
import { runReadmeSnippet } from '@peft/core/testing';
import { expect, it } from 'vitest';

it('runs the README snippet', async () => {
  const run = await runReadmeSnippet(join(import.meta.dirname, '..', 'README.md'), { bindings: ['gpu'] });
  const gpu = run.bindings.gpu as { available: boolean };
  const printed = run.lines.join('\n');
  if (gpu.available) expect(printed).toMatch(/^loss \d+\.\d{4} weight grad 3,4\nlive tensors 0 /);
  else expect(printed).toMatch(/^no WebGPU adapter here \(.+\): nothing to run$/);
});
