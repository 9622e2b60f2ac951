import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { createCpuBackend } from '@peft/backend-cpu';
import { backward, crossEntropy, memoryInfo, reshape, tidy } from '@peft/core';
import { afterAll, describe, expect, it } from 'vitest';
import { CausalLMHead } from './causal-lm-head.js';
import { FIXTURES, loadTiny, maxAbsDiff, pad, referenceCrossEntropy, TINY_MODELS, tokenRows } from './test-models.js';

const backend = createCpuBackend();
afterAll(() => backend.destroy());

/** Study B's labels: −100 on the prompt (the first `promptLength` real tokens) and the padding. */
function answerLabels(batch: { inputIds: number[][]; attentionMask: number[][] }, promptLengths: number[]): number[][] {
  return batch.inputIds.map((row, b) => {
    let seen = 0;
    return row.map((id, t) => {
      if (batch.attentionMask[b]![t] === 0) return -100;
      return seen++ < promptLengths[b]! ? -100 : id;
    });
  });
}

/** Targets for the logits at each position: the label one position later (transformers' shift). */
function shifted(labels: number[][]): number[] {
  return labels.flatMap((row) => row.map((_, t) => (t + 1 < row.length ? row[t + 1]! : -100)));
}

describe('CausalLMHead.loss', () => {
  for (const name of TINY_MODELS) {
    it(`${name}: equals PyTorch's loss on the golden batch`, async () => {
      const g = JSON.parse(readFileSync(join(FIXTURES, name, 'golden.json'), 'utf8'));
      const model = (await loadTiny(name, backend)).unfreeze();
      const head = new CausalLMHead(model);
      const { inputIds, attentionMask } = g.right as { inputIds: number[][]; attentionMask: number[][] };
      const labels = answerLabels(
        { inputIds, attentionMask },
        inputIds.map(() => 0),
      );
      expect(shifted(labels)).toEqual((g.targets as number[][]).flat());
      const loss = head.loss({ inputIds, attentionMask, labels });
      expect(Math.abs((await loss.item()) - g.loss)).toBeLessThan(1e-4);
      loss.dispose();
      model.dispose();
    });

    for (const side of ['right', 'left'] as const) {
      it(`${name}, ${side} padding: loss only after the prompt equals cross-entropy on hand-shifted targets`, async () => {
        const model = (await loadTiny(name, backend)).unfreeze();
        const head = new CausalLMHead(model);
        const batch = pad(tokenRows([7, 4, 9], model.config.vocabSize, 13), side, 0);
        const labels = answerLabels(batch, [4, 2, 6]);
        const full = model.forward(batch).logits;
        const vocab = model.config.vocabSize;
        const want = referenceCrossEntropy(await full.data(), vocab, shifted(labels));
        const loss = head.loss({ ...batch, labels });
        expect(Math.abs((await loss.item()) - want)).toBeLessThan(1e-5);
        // Same gradients as the loss over the full [batch, seq, vocab] logits.
        backward(loss);
        const lm = model.lmHead.weight;
        const embed = model.base.getParameter(model.baseName === 'gpt_neox' ? 'embed_in.weight' : 'embed_tokens.weight');
        const [gHead, gEmbed] = [await lm.grad!.data(), await embed.grad!.data()];
        for (const p of model.parameters()) {
          p.grad?.dispose();
          p.grad = null;
        }
        full.dispose();
        const reference = tidy(() => crossEntropy(reshape(model.forward(batch).logits, [3 * 9, vocab]), shifted(labels)));
        backward(reference);
        expect(maxAbsDiff(gHead, await lm.grad!.data())).toBeLessThan(1e-6);
        expect(maxAbsDiff(gEmbed, await embed.grad!.data())).toBeLessThan(1e-6);
        for (const t of [loss, reference]) t.dispose();
        model.dispose();
      });
    }
  }

  it("forward gives the causal LM's logits, and with labels the same loss as loss()", async () => {
    const model = await loadTiny('tiny-gpt-neox', backend);
    const head = new CausalLMHead(model);
    const batch = pad(tokenRows([6, 4], model.config.vocabSize, 17), 'right', 0);
    const labels = answerLabels(batch, [3, 2]);
    const plain = head.forward(batch);
    expect(plain.loss).toBeUndefined();
    const reference = model.forward(batch).logits;
    expect(maxAbsDiff(await plain.logits.data(), await reference.data())).toBe(0);
    const out = head.forward({ ...batch, labels });
    const loss = head.loss({ ...batch, labels });
    expect(Math.abs((await out.loss!.item()) - (await loss.item()))).toBeLessThan(1e-6);
    for (const t of [plain.logits, reference, out.logits, out.loss!, loss]) t.dispose();
    model.dispose();
  });

  it('no target left in the batch gives a zero loss with zero gradients', async () => {
    const model = (await loadTiny('tiny-llama', backend)).unfreeze();
    const head = new CausalLMHead(model);
    const batch = pad(tokenRows([3, 2], model.config.vocabSize), 'right');
    const loss = head.loss({
      ...batch,
      labels: [
        [-100, -100, -100],
        [7, -100, -100],
      ],
    });
    expect(await loss.item()).toBe(0);
    backward(loss);
    expect(Array.from(await model.lmHead.weight.grad!.data()).every((x) => x === 0)).toBe(true);
    loss.dispose();
    model.dispose();
  });

  it('parameter names are the causal LM names; errors name the offending label', async () => {
    const model = (await loadTiny('tiny-gpt-neox', backend)).unfreeze();
    const head = new CausalLMHead(model);
    expect([...head.namedParameters()].map(([n]) => n)).toEqual([...model.namedParameters()].map(([n]) => n));
    expect([...head.namedParameters()].map(([n]) => n).at(-1)).toBe('embed_out.weight');
    const batch = pad(tokenRows([3, 2], model.config.vocabSize), 'right');
    const live = memoryInfo(backend).tensors;
    expect(() =>
      head.loss({
        ...batch,
        labels: [
          [-100, 5, 600],
          [-100, -100, -100],
        ],
      }),
    ).toThrow('CausalLMHead.loss: labels[0][2] = 600 is outside the vocabulary [0, 600) and is not the ignore index −100');
    expect(() => head.loss({ ...batch, labels: [[-100, 5, 6]] })).toThrow('labels must be [2, 3] like inputIds; got 1 rows of 3');
    expect(memoryInfo(backend).tensors).toBe(live);
    model.dispose();
  });
});
