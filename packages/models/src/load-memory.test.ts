import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createCpuBackend } from '@peft/backend-cpu';
import { saveSafetensors } from '@peft/core/node';
import { afterAll, describe, expect, it } from 'vitest';
import { createModel } from './causal-lm.js';
import { parseConfig } from './config.js';

const MiB = 1024 * 1024;
const dir = mkdtempSync(join(tmpdir(), 'peft-big-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

// ~84M parameters, 320 MiB of float32; the largest tensor is 16 MiB.
const config = {
  model_type: 'gpt_neox',
  vocab_size: 4096,
  hidden_size: 1024,
  num_attention_heads: 16,
  num_hidden_layers: 6,
  intermediate_size: 4096,
  rotary_pct: 0.25,
  torch_dtype: 'float32',
};

describe.skipIf(!existsSync('/proc/self/status'))('loading memory', () => {
  it('peaks below the checkpoint size plus 16 MiB of host memory (checkpoint of 320 MiB)', async () => {
    writeFileSync(join(dir, 'config.json'), JSON.stringify(config));
    // Names and shapes from the model skeleton (built on a throwaway backend, nothing random drawn).
    const backend = createCpuBackend({ threads: 1 });
    const skeleton = createModel(parseConfig(config), { backend, init: 'zeros' });
    const entries = [...skeleton.namedParameters()].map(([name, p]) => ({ name, shape: [...p.shape], size: p.size }));
    skeleton.dispose();
    backend.destroy();
    const zeros = new Uint8Array(16 * MiB);
    await saveSafetensors(
      join(dir, 'model.safetensors'),
      entries.map((e) => ({ name: e.name, dtype: 'F32' as const, shape: e.shape, data: () => zeros.subarray(0, e.size * 4) })),
    );
    const fileBytes = statSync(join(dir, 'model.safetensors')).size;
    expect(fileBytes).toBeGreaterThan(300 * MiB);
    const child = join(import.meta.dirname, 'load-memory.child.ts');
    const out = execFileSync(process.execPath, ['--conditions=@peft/source', '--import', 'tsx', child, dir], { encoding: 'utf8' });
    const { before, after, bytes } = JSON.parse(out.trim().split('\n').at(-1)!);
    expect(bytes).toBeGreaterThan(300 * MiB);
    const extra = after - before - fileBytes;
    console.log(
      `checkpoint ${(fileBytes / MiB).toFixed(0)} MiB, peak RSS grew ${((after - before) / MiB).toFixed(0)} MiB while loading: ${(extra / MiB).toFixed(0)} MiB beyond the checkpoint`,
    );
    expect(extra).toBeLessThan(16 * MiB);
  }, 120_000);
});
