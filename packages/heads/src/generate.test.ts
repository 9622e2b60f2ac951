import { createCpuBackend } from '@peft/backend-cpu';
import { memoryInfo, noGrad, tensor } from '@peft/core';
import type { CausalLM } from '@peft/models';
import { afterAll, describe, expect, it } from 'vitest';
import { CausalLMHead } from './causal-lm-head.js';
import type { TokenDecoder } from './generate.js';
import { loadTiny, pad, TINY_MODELS, tokenRows } from './test-models.js';

const backend = createCpuBackend();
afterAll(() => backend.destroy());

/** Greedy decoding the slow way: a full forward over prompt + new tokens for every step, no cache. */
async function greedyWithoutCache(model: CausalLM, prompts: number[][], maxNewTokens: number, eos: number | null): Promise<number[][]> {
  const vocab = model.config.vocabSize;
  const out: number[][] = prompts.map(() => []);
  const done = prompts.map(() => false);
  for (let step = 0; step < maxNewTokens && done.some((d) => !d); step++) {
    const batch = pad(
      prompts.map((p, b) => [...p, ...out[b]!]),
      'left',
      0,
    );
    const width = batch.inputIds[0]!.length;
    const logits = noGrad(() => model.forward(batch).logits);
    const values = await logits.data();
    logits.dispose();
    prompts.forEach((_, b) => {
      if (done[b]) return;
      const at = (b * width + width - 1) * vocab;
      let best = 0;
      for (let v = 1; v < vocab; v++) if (values[at + v]! > values[at + best]!) best = v;
      if (best === eos) done[b] = true;
      else out[b]!.push(best);
    });
  }
  return out;
}

/** Two characters per token, so a stop string can start inside a token. */
const twoChars: TokenDecoder = {
  decode: (ids) => ids.map((id) => String.fromCharCode(97 + (id % 26), 65 + (Math.floor(id / 26) % 26))).join(''),
};

describe('CausalLMHead.generate', () => {
  for (const name of TINY_MODELS) {
    it(`${name}: KV-cache greedy decoding of a left-padded batch equals full forwards without cache, token for token`, async () => {
      const model = await loadTiny(name, backend);
      const head = new CausalLMHead(model);
      const prompts = tokenRows([3, 7, 5], model.config.vocabSize, 17);
      const want = await greedyWithoutCache(model, prompts, 10, null);
      const before = memoryInfo(backend);
      const got = await head.generate(prompts, { maxNewTokens: 10, eosTokenId: null, padTokenId: 0 });
      expect(memoryInfo(backend)).toEqual(before);
      expect(got).toEqual(want);
      expect(got.map((r) => r.length)).toEqual([10, 10, 10]);
      // Each prompt alone (no padding) continues the same way.
      for (let b = 0; b < prompts.length; b++) {
        expect(await head.generate([prompts[b]!], { maxNewTokens: 10, eosTokenId: null })).toEqual([want[b]]);
      }
      // A right-padded batch with its mask is re-padded on the left; a tensor of equal rows works too.
      const right = pad(prompts, 'right', 1);
      expect(await head.generate(right, { maxNewTokens: 10, eosTokenId: null })).toEqual(want);
      const ids = tensor(prompts[1]!, [1, 7], { backend, dtype: 'int32' });
      expect(await head.generate(ids, { maxNewTokens: 10, eosTokenId: null })).toEqual([want[1]]);
      ids.dispose();
      expect(memoryInfo(backend)).toEqual(before);
      model.dispose();
    });
  }

  it('EOS ends a row (not included) while the others go on, exactly as without cache', async () => {
    const model = await loadTiny('tiny-llama', backend);
    const head = new CausalLMHead(model);
    const prompts = tokenRows([4, 2, 6], model.config.vocabSize, 29);
    const free = await head.generate(prompts, { maxNewTokens: 12, eosTokenId: null, padTokenId: 0 });
    const eos = free[0]![3]!;
    const cut = free.map((row) => (row.includes(eos) ? row.slice(0, row.indexOf(eos)) : row));
    expect(cut[0]!.length).toBeLessThanOrEqual(3);
    const got = await head.generate(prompts, { maxNewTokens: 12, eosTokenId: eos, padTokenId: 0 });
    expect(got).toEqual(cut);
    expect(got).toEqual(await greedyWithoutCache(model, prompts, 12, eos));
    // Several EOS ids; the config's eos_token_id is the default.
    expect(await head.generate(prompts, { maxNewTokens: 12, eosTokenId: [9999, eos], padTokenId: 0 })).toEqual(cut);
    const configEos = model.config.eosTokenId!;
    const byDefault = await head.generate(prompts, { maxNewTokens: 12, padTokenId: 0 });
    expect(byDefault).toEqual(free.map((row) => (row.includes(configEos) ? row.slice(0, row.indexOf(configEos)) : row)));
    model.dispose();
  });

  it('a stop string ends a row; tokens are cut before it and generateText exactly at it', async () => {
    const model = await loadTiny('tiny-gpt-neox', backend);
    const head = new CausalLMHead(model);
    const prompts = tokenRows([5, 3, 4], model.config.vocabSize, 31);
    const free = await head.generate(prompts, { maxNewTokens: 12, eosTokenId: null, padTokenId: 0 });
    const text0 = twoChars.decode(free[0]!);
    const stop = text0.slice(5, 8); // starts inside token 2, ends inside token 3
    const expectedTokens = free.map((row) => {
      const at = twoChars.decode(row).indexOf(stop);
      return at < 0 ? row : row.slice(0, Math.floor(at / 2));
    });
    const expectedTexts = free.map((row) => {
      const text = twoChars.decode(row);
      const at = text.indexOf(stop);
      return at < 0 ? text : text.slice(0, at);
    });
    expect(expectedTokens[0]!.length).toBeLessThanOrEqual(2);
    const opts = { maxNewTokens: 12, eosTokenId: null, padTokenId: 0, stopStrings: ['no such text', stop], tokenizer: twoChars };
    expect(await head.generate(prompts, opts)).toEqual(expectedTokens);
    expect(await head.generateText(prompts, opts)).toEqual(expectedTexts);
    expect(expectedTexts[0]).toBe(text0.slice(0, text0.indexOf(stop)));
    model.dispose();
  });

  it('maxNewTokens bounds every row', async () => {
    const model = await loadTiny('tiny-gpt-neox', backend);
    const head = new CausalLMHead(model);
    const prompts = tokenRows([2, 5], model.config.vocabSize, 3);
    const four = await head.generate(prompts, { maxNewTokens: 4, eosTokenId: null, padTokenId: 0 });
    expect(four.map((r) => r.length)).toEqual([4, 4]);
    const seven = await head.generate(prompts, { maxNewTokens: 7, eosTokenId: null, padTokenId: 0 });
    expect(seven.map((r) => r.slice(0, 4))).toEqual(four);
    expect(await head.generate(prompts, { maxNewTokens: 0, padTokenId: 0 })).toEqual([[], []]);
    model.dispose();
  });

  it('errors say what is missing', async () => {
    const model = await loadTiny('tiny-llama', backend);
    const head = new CausalLMHead(model);
    const before = memoryInfo(backend);
    await expect(
      head.generate(
        [
          [5, 6, 7],
          [8, 9],
        ],
        { maxNewTokens: 3 },
      ),
    ).rejects.toThrow('generate: the prompts have different lengths (3, 2) and no pad id is known: pass opts.padTokenId');
    await expect(
      head.generate(
        {
          inputIds: [
            [5, 6, 7],
            [8, 9, 1],
          ],
          attentionMask: [[1, 1, 1]],
        },
        { maxNewTokens: 3 },
      ),
    ).rejects.toThrow('generate: attentionMask (1 rows of 3) does not match inputIds (2 rows of 3, 3)');
    await expect(head.generate([[5, 6]], { maxNewTokens: 3, stopStrings: ['\n'] })).rejects.toThrow(
      'generate: stopStrings need opts.tokenizer',
    );
    await expect(head.generate([[5, 6]], { maxNewTokens: -1 })).rejects.toThrow('generate: maxNewTokens is -1; it must be an integer >= 0');
    await expect(head.generate([[5, 6], []], { maxNewTokens: 2, padTokenId: 0 })).rejects.toThrow('generate: prompt row 1 has no tokens');
    await expect(head.generate([[5, 520]], { maxNewTokens: 2 })).rejects.toThrow(
      'generate: inputIds[0][1] = 520 is outside the vocabulary [0, 520)',
    );
    expect(memoryInfo(backend)).toEqual(before);
    model.dispose();
  });
});
