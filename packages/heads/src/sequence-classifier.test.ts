import { createCpuBackend } from '@peft/backend-cpu';
import { adamwStep, backward, Generator, memoryInfo, noGrad, zeros } from '@peft/core';
import { afterAll, describe, expect, it } from 'vitest';
import { SequenceClassifier } from './sequence-classifier.js';
import { loadTiny, maxAbsDiff, pad, referenceCrossEntropy, TINY_MODELS, tokenRows } from './test-models.js';

const backend = createCpuBackend();
afterAll(() => backend.destroy());

describe('SequenceClassifier pooling (Study A)', () => {
  for (const name of TINY_MODELS) {
    it(`${name}: right and left padding pool each sequence's own last hidden state`, async () => {
      const model = await loadTiny(name, backend);
      const head = new SequenceClassifier(model, { numLabels: 3, generator: new Generator(7) });
      const hidden = model.config.hiddenSize;
      const rows = tokenRows([5, 2, 8], model.config.vocabSize);
      // Each sequence alone, unpadded: its final hidden state at its last token.
      const alone: number[] = [];
      for (const r of rows) {
        const h = model.hiddenStates({ inputIds: [r] });
        alone.push(...Array.from(await h.data()).slice((r.length - 1) * hidden, r.length * hidden));
        h.dispose();
      }
      for (const side of ['right', 'left'] as const) {
        const batch = pad(rows, side, 0);
        const pooled = head.pool(batch);
        expect(pooled.shape).toEqual([3, hidden]);
        expect(maxAbsDiff(await pooled.data(), alone)).toBeLessThan(1e-5);
        pooled.dispose();
      }
      // Not vacuous: under right padding the last column of a short row is a padding position,
      // whose hidden state differs from the row's last real token.
      const right = pad(rows, 'right', 0);
      const full = model.hiddenStates(right);
      const values = await full.data();
      const width = 8;
      const lastColumnOfShortRow = Array.from(values).slice((1 * width + width - 1) * hidden, (1 * width + width) * hidden);
      expect(maxAbsDiff(lastColumnOfShortRow, alone.slice(hidden, 2 * hidden))).toBeGreaterThan(1e-3);
      full.dispose();
      head.dispose();
      model.dispose();
    });
  }

  it('logits are the score layer applied to the pooled state; predict is their argmax', async () => {
    const model = await loadTiny('tiny-llama', backend);
    const head = new SequenceClassifier(model, { numLabels: 4, generator: new Generator(1) });
    const batch = pad(tokenRows([3, 6, 4], model.config.vocabSize, 5), 'right');
    const pooled = await head.pool(batch).data();
    const w = await head.score.weight.data();
    const { logits, loss: none } = head.forward(batch);
    expect(none).toBeUndefined();
    expect(logits.shape).toEqual([3, 4]);
    const want: number[] = [];
    for (let b = 0; b < 3; b++) {
      for (let c = 0; c < 4; c++) {
        let s = 0;
        for (let k = 0; k < 64; k++) s += pooled[b * 64 + k]! * w[c * 64 + k]!;
        want.push(s);
      }
    }
    const got = Array.from(await logits.data());
    expect(maxAbsDiff(got, want)).toBeLessThan(1e-5);
    const argmaxes = [0, 1, 2].map((b) => got.slice(b * 4, b * 4 + 4).reduce((best, v, i, a) => (v > a[best]! ? i : best), 0));
    expect(await head.predict(batch)).toEqual(argmaxes);
    logits.dispose();
    head.dispose();
    model.dispose();
  });
});

describe('SequenceClassifier loss and training', () => {
  it('loss equals softmax cross-entropy computed by hand from its logits', async () => {
    const model = await loadTiny('tiny-gpt-neox', backend);
    const head = new SequenceClassifier(model, { numLabels: 3, generator: new Generator(3) });
    const batch = pad(tokenRows([4, 7, 2, 5], model.config.vocabSize, 9), 'right');
    const labels = [2, 0, 1, 2];
    const { logits } = head.forward(batch);
    const want = referenceCrossEntropy(await logits.data(), 3, labels);
    const loss = head.loss(batch, labels);
    expect(loss.shape).toEqual([]);
    expect(Math.abs((await loss.item()) - want)).toBeLessThan(1e-5);
    // forward with labels: the same loss beside the logits (transformers' SequenceClassifierOutput).
    const out = head.forward({ ...batch, labels });
    expect(Math.abs((await out.loss!.item()) - want)).toBeLessThan(1e-5);
    expect(maxAbsDiff(await out.logits.data(), await logits.data())).toBe(0);
    expect(() => head.forward({ ...batch, labels: [0, 1] })).toThrow('SequenceClassifier.forward: 2 labels for a batch of 4 rows');
    for (const t of [logits, loss, out.logits, out.loss!]) t.dispose();
    head.dispose();
    model.dispose();
  });

  for (const name of TINY_MODELS) {
    it(`${name}: AdamW steps on the score head alone reduce the loss of a 2-class toy task`, async () => {
      const model = await loadTiny(name, backend);
      model.freeze();
      const head = new SequenceClassifier(model, { numLabels: 2, generator: new Generator(11) });
      expect(head.trainableParameters()).toEqual([head.score.weight]);
      // Class = the last token (10 or 20) after a random prefix; left and right rows mixed lengths.
      const prefixes = tokenRows([3, 5, 2, 6, 4, 3, 5, 2], model.config.vocabSize, 21);
      const labels = [0, 1, 0, 1, 1, 0, 1, 0];
      const batch = pad(
        prefixes.map((p, i) => [...p, labels[i] === 0 ? 10 : 20]),
        'right',
      );
      const w = head.score.weight;
      const m = zeros(w.shape, { backend });
      const v = zeros(w.shape, { backend });
      const losses: number[] = [];
      let before = memoryInfo(backend);
      for (let step = 1; step <= 30; step++) {
        const loss = head.loss(batch, labels);
        losses.push(await loss.item());
        backward(loss);
        loss.dispose();
        noGrad(() => adamwStep(w, w.grad!, m, v, { lr: 0.05, beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0.01, step, gradScale: 1 }));
        w.grad!.dispose();
        w.grad = null;
        if (step === 2) before = memoryInfo(backend);
        if (step > 2) expect(memoryInfo(backend)).toEqual(before);
      }
      expect(losses[0]).toBeGreaterThan(0.3);
      expect(losses[29]!).toBeLessThan(losses[0]! / 3);
      expect(await head.predict(batch)).toEqual(labels);
      for (const t of [m, v]) t.dispose();
      head.dispose();
      model.dispose();
    });
  }
});

describe('SequenceClassifier names and errors', () => {
  it("parameter names are transformers' *ForSequenceClassification names", async () => {
    const neox = await loadTiny('tiny-gpt-neox', backend);
    const neoxNames = [...new SequenceClassifier(neox, { numLabels: 9 }).namedParameters()].map(([n]) => n);
    expect(neoxNames[0]).toBe('gpt_neox.embed_in.weight');
    expect(neoxNames).toContain('gpt_neox.layers.1.attention.query_key_value.weight');
    expect(neoxNames).toContain('gpt_neox.final_layer_norm.bias');
    expect(neoxNames.at(-1)).toBe('score.weight');
    expect(neoxNames.some((n) => n.startsWith('embed_out'))).toBe(false);
    const llama = await loadTiny('tiny-llama', backend);
    const head = new SequenceClassifier(llama, { numLabels: 9 });
    const llamaNames = [...head.namedParameters()].map(([n]) => n);
    expect(llamaNames[0]).toBe('model.embed_tokens.weight');
    expect(llamaNames.at(-1)).toBe('score.weight');
    expect(llamaNames.some((n) => n.startsWith('lm_head'))).toBe(false);
    expect(head.score.weight.shape).toEqual([9, 64]);
    expect(head.score.bias).toBeNull();
    expect(head.scoreName).toBe('score');
    neox.dispose();
    llama.dispose();
  });

  it('the score init is PyTorch Linear init from the given generator', async () => {
    const model = await loadTiny('tiny-llama', backend);
    const a = new SequenceClassifier(model, { numLabels: 3, generator: new Generator(5) });
    const b = new SequenceClassifier(model, { numLabels: 3, generator: new Generator(5) });
    const wa = await a.score.weight.data();
    expect(Array.from(wa)).toEqual(Array.from(await b.score.weight.data()));
    expect(Math.max(...Array.from(wa, Math.abs))).toBeLessThanOrEqual(1 / Math.sqrt(64));
    a.score.dispose();
    b.score.dispose();
    model.dispose();
  });

  it('errors name the offending value', async () => {
    const model = await loadTiny('tiny-llama', backend);
    expect(() => new SequenceClassifier(model, { numLabels: 0 })).toThrow(
      'SequenceClassifier: numLabels is 0; it must be a positive integer',
    );
    expect(() => new SequenceClassifier(model, { numLabels: -2 })).toThrow('numLabels is -2');
    expect(() => new SequenceClassifier(model, { numLabels: 2.5 })).toThrow('numLabels is 2.5');
    const head = new SequenceClassifier(model, { numLabels: 3 });
    const batch = pad(tokenRows([3, 4], model.config.vocabSize), 'right');
    const live = memoryInfo(backend).tensors;
    expect(() => head.loss(batch, [1, 3])).toThrow('SequenceClassifier.loss: labels[1] = 3 is outside [0, 3) (numLabels 3)');
    expect(() => head.loss(batch, [-100, 0])).toThrow('labels[0] = -100 is outside [0, 3)');
    expect(() => head.loss(batch, [1])).toThrow('1 labels for a batch of 2 rows');
    expect(() =>
      head.forward({
        inputIds: [
          [5, 6, 7],
          [8, 9],
        ],
      }),
    ).toThrow('inputIds row 1 has 2 tokens, row 0 has 3: pad the batch');
    expect(() => head.forward({ inputIds: [[5, 6, 7]], attentionMask: [[1, 0, 1]] })).toThrow(
      'attentionMask row 0 [1, 0, 1] is neither left- nor right-padded',
    );
    expect(() => head.forward({ inputIds: [[5, 6]], attentionMask: [[0, 0]] })).toThrow('attentionMask row 0 has no real token');
    expect(() => head.forward({ inputIds: [[5, 600]] })).toThrow('inputIds[0][1] = 600 is outside the vocabulary [0, 520)');
    expect(memoryInfo(backend).tensors).toBe(live);
    noGrad(() => head.forward(batch)).logits.dispose();
    expect(memoryInfo(backend).tensors).toBe(live);
    model.dispose();
  });
});
