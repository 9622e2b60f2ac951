import { join } from 'node:path';
import { createCpuBackend } from '@peft/backend-cpu';
import { argmax } from '@peft/core';
import { afterAll, describe, expect, it } from 'vitest';
import { loadModel, loadTokenizer } from './node/index.js';

const FIXTURES = join(import.meta.dirname, '..', '..', '..', 'fixtures', 'models');
const backend = createCpuBackend();
afterAll(() => backend.destroy());

describe('the bundled tiny checkpoints are complete Hugging Face folders', () => {
  for (const [name, text] of [
    ['tiny-gpt-neox', 'タイトル: 新しいスマートフォン\n本文: 発売日が決まった。'],
    ['tiny-gpt-neox-seq', 'Mesna significantly reduces IFO genotoxicity.'],
    ['tiny-llama', 'Input: Mesna significantly reduces IFO genotoxicity.\nAnswer:'],
    ['tiny-llama-bias', 'Cisplatin-induced nephrotoxicity in rats'],
  ] as const) {
    it(`${name}: tokenizer and model load and run together`, async () => {
      const dir = join(FIXTURES, name);
      const tokenizer = await loadTokenizer(dir);
      const model = await loadModel(dir, { backend });
      const ids = tokenizer.encode(text);
      expect(ids.length).toBeGreaterThan(3);
      expect(Math.max(...ids)).toBeLessThan(model.config.vocabSize);
      expect(tokenizer.decode(ids, { skipSpecialTokens: true }).replace(/\s+/g, '')).toBe(text.replace(/\s+/g, ''));
      const { logits } = model.forward({ inputIds: [ids] });
      const next = argmax(logits);
      expect(next.shape).toEqual([1, ids.length]);
      for (const t of [logits, next]) t.dispose();
      model.dispose();
    });
  }
});
