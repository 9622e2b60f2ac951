import { createCpuBackend } from '@peft/backend-cpu';
import { backward, Generator, memoryInfo, noGrad } from '@peft/core';
import { afterAll, describe, expect, it } from 'vitest';
import { loadTiny, maxAbsDiff, pad, referenceCrossEntropy, TINY_MODELS, tokenRows } from './test-models.js';
import { TokenClassifier } from './token-classifier.js';

const backend = createCpuBackend();
afterAll(() => backend.destroy());

describe('TokenClassifier', () => {
  it("parameter names are transformers' *ForTokenClassification names", async () => {
    const neox = await loadTiny('tiny-gpt-neox', backend);
    const a = new TokenClassifier(neox, { numLabels: 5 });
    const neoxNames = [...a.namedParameters()].map(([n]) => n);
    expect(neoxNames[0]).toBe('gpt_neox.embed_in.weight');
    expect(neoxNames.slice(-2)).toEqual(['classifier.weight', 'classifier.bias']);
    expect(a.classifierName).toBe('classifier');
    expect([...a.namedModules()].map(([n]) => n)).toContain('dropout');
    const llama = await loadTiny('tiny-llama', backend);
    const b = new TokenClassifier(llama, { numLabels: 5 });
    const llamaNames = [...b.namedParameters()].map(([n]) => n);
    expect(llamaNames[0]).toBe('model.embed_tokens.weight');
    expect(llamaNames.slice(-2)).toEqual(['score.weight', 'score.bias']);
    expect(b.classifierName).toBe('score');
    // transformers' default classifier dropout
    expect((b.getSubmodule('dropout') as unknown as { p: number }).p).toBe(0.1);
    a.dispose();
    b.dispose();
    neox.dispose();
    llama.dispose();
  });

  for (const name of TINY_MODELS) {
    it(`${name}: logits per token match the classifier on the model's hidden states; −100 labels are ignored`, async () => {
      const model = await loadTiny(name, backend);
      const head = new TokenClassifier(model, { numLabels: 3, generator: new Generator(2) }).eval();
      const batch = pad(tokenRows([4, 6, 3], model.config.vocabSize, 4), 'right');
      const { logits } = head.forward(batch);
      expect(logits.shape).toEqual([3, 6, 3]);
      const hidden = model.hiddenStates(batch);
      const h = await hidden.data();
      const w = await head.classifier.weight.data();
      const bias = await head.classifier.bias!.data();
      const want: number[] = [];
      for (let r = 0; r < 18; r++)
        for (let c = 0; c < 3; c++) {
          let s = bias[c]!;
          for (let k = 0; k < 64; k++) s += h[r * 64 + k]! * w[c * 64 + k]!;
          want.push(s);
        }
      const got = await logits.data();
      expect(maxAbsDiff(got, want)).toBeLessThan(1e-5);
      const labels = [
        [0, 2, -100, 1, -100, -100],
        [1, 1, 0, 2, 2, 0],
        [-100, 2, 0, -100, -100, -100],
      ];
      const loss = head.loss(batch, labels);
      expect(Math.abs((await loss.item()) - referenceCrossEntropy(got, 3, labels.flat()))).toBeLessThan(1e-5);
      // Every label ignored: a zero loss.
      const none = head.loss(
        batch,
        labels.map((r) => r.map(() => -100)),
      );
      expect(await none.item()).toBe(0);
      const predicted = await head.predict(batch);
      expect(predicted.length).toBe(3);
      expect(predicted[1]!.length).toBe(6);
      expect(predicted.flat()).toEqual(
        Array.from({ length: 18 }, (_, r) => [0, 1, 2].reduce((best, c) => (got[r * 3 + c]! > got[r * 3 + best]! ? c : best), 0)),
      );
      for (const t of [logits, hidden, loss, none]) t.dispose();
      head.classifier.dispose();
      model.dispose();
    });
  }

  it('trains: backward reaches the classifier and the gradient of ignored tokens is zero', async () => {
    const model = await loadTiny('tiny-llama', backend);
    model.freeze();
    const head = new TokenClassifier(model, { numLabels: 2, dropout: 0, generator: new Generator(1) });
    const batch = { inputIds: tokenRows([4], model.config.vocabSize, 8) };
    const loss = head.loss(batch, [[-100, -100, -100, -100]]);
    backward(loss);
    expect(Array.from(await head.classifier.weight.grad!.data()).every((g) => g === 0)).toBe(true);
    loss.dispose();
    head.classifier.dispose();
    model.dispose();
  });

  it('errors name the offending value', async () => {
    const model = await loadTiny('tiny-gpt-neox', backend);
    expect(() => new TokenClassifier(model, { numLabels: 0 })).toThrow('TokenClassifier: numLabels is 0; it must be a positive integer');
    const head = new TokenClassifier(model, { numLabels: 4 });
    const batch = pad(tokenRows([3, 2], model.config.vocabSize), 'right');
    const live = memoryInfo(backend).tensors;
    expect(() =>
      head.loss(batch, [
        [0, 1, 2],
        [3, 4, -100],
      ]),
    ).toThrow('TokenClassifier.loss: labels[1][1] = 4 is outside [0, 4) and is not the ignore index −100');
    expect(() => head.loss(batch, [[0, 1, 2]])).toThrow('labels must be [2, 3] like inputIds; got 1 rows of 3');
    expect(memoryInfo(backend).tensors).toBe(live);
    noGrad(() => head.forward(batch)).logits.dispose();
    expect(memoryInfo(backend).tensors).toBe(live);
    head.classifier.dispose();
    model.dispose();
  });
});
