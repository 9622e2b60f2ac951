import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { createCpuBackend } from '@peft/backend-cpu';
import { afterAll, describe, expect, it } from 'vitest';
import { KVCache } from './models/common.js';
import { loadModel } from './node/index.js';

const FIXTURES = join(import.meta.dirname, '..', '..', '..', 'fixtures', 'models');
const backend = createCpuBackend();
afterAll(() => backend.destroy());

describe('KV cache', () => {
  for (const name of ['tiny-gpt-neox', 'tiny-llama']) {
    it(`${name}: token-by-token decoding of a left-padded batch equals the full forward`, async () => {
      const g = JSON.parse(readFileSync(join(FIXTURES, name, 'golden.json'), 'utf8'));
      const model = await loadModel(join(FIXTURES, name), { backend });
      const { inputIds, attentionMask } = g.left as { inputIds: number[][]; attentionMask: number[][] };
      const seq = inputIds[0]!.length;
      const full = model.forward({ inputIds, attentionMask });
      const fullValues = await full.logits.data();
      full.logits.dispose();
      const vocab = model.config.vocabSize;
      const cache = new KVCache();
      const prefix = seq - 3;
      let worst = 0;
      for (let end = prefix; end <= seq; end++) {
        const start = end === prefix ? 0 : end - 1;
        const step = model.forward(
          { inputIds: inputIds.map((r) => r.slice(start, end)), attentionMask: attentionMask.map((r) => r.slice(0, end)) },
          { cache },
        );
        expect(cache.length).toBe(end);
        const values = await step.logits.data();
        const n = end - start;
        for (let b = 0; b < inputIds.length; b++) {
          for (let v = 0; v < vocab; v++) {
            const got = values[(b * n + n - 1) * vocab + v]!;
            const want = fullValues[(b * seq + end - 1) * vocab + v]!;
            worst = Math.max(worst, Math.abs(got - want));
          }
        }
        step.logits.dispose();
      }
      expect(worst).toBeLessThan(1e-5);
      cache.dispose();
      model.dispose();
    });
  }

  it('asks for the mask of all tokens once a cache is in use', async () => {
    const model = await loadModel(join(FIXTURES, 'tiny-llama'), { backend });
    const cache = new KVCache();
    model.forward({ inputIds: [[5, 6, 7]], attentionMask: [[1, 1, 1]] }, { cache }).logits.dispose();
    expect(() => model.forward({ inputIds: [[8]], attentionMask: [[1]] }, { cache })).toThrow(
      /attentionMask tensor #\d+ \[1, 1\] int32 must be \[1, 4\] \(batch, cached \+ new tokens\)/,
    );
    cache.dispose();
    model.dispose();
  });
});
