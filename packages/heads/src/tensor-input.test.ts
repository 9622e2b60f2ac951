import { join } from 'node:path';
import { createCpuBackend } from '@peft/backend-cpu';
import { backward, Generator, type Module, memoryInfo, reshape, type Tensor, tensor } from '@peft/core';
import { loadModel } from '@peft/models/node';
import { afterAll, describe, expect, it } from 'vitest';
import { CausalLMHead } from './causal-lm-head.js';
import { SequenceClassifier } from './sequence-classifier.js';
import { type HostInput, supportsTensorLoss } from './tensor-input.js';
import { FIXTURES, loadTiny, maxAbsDiff, pad, TINY_MODELS, tokenRows } from './test-models.js';

const backend = createCpuBackend();
afterAll(() => backend.destroy());

/** The host arrays as device tensors, as a trainer writes them. */
function upload<T extends object>(inputs: T): { [K in keyof T]: Tensor } {
  const out: Record<string, Tensor> = {};
  for (const [name, v] of Object.entries(inputs) as [string, HostInput][]) out[name] = tensor(v.data, v.shape, { backend, dtype: v.dtype });
  return out as { [K in keyof T]: Tensor };
}

/** The loss value and every trainable tensor's gradient after backward, gradients cleared after. */
async function lossAndGrads(module: Module, run: () => Tensor): Promise<{ loss: number; grads: Map<string, Float32Array> }> {
  const loss = run();
  backward(loss);
  const value = await loss.item();
  loss.dispose();
  const grads = new Map<string, Float32Array>();
  for (const [name, p] of module.namedParameters()) {
    if (!p.requiresGrad) continue;
    grads.set(name, p.grad ? Float32Array.from(await p.grad.data()) : new Float32Array(p.size));
    p.grad?.dispose();
    p.grad = null;
  }
  return { loss: value, grads };
}

/** Largest gradient difference relative to the largest gradient magnitude of the reference. */
function gradError(want: Map<string, Float32Array>, got: Map<string, Float32Array>): number {
  expect([...got.keys()]).toEqual([...want.keys()]);
  let scale = 0;
  let worst = 0;
  for (const [name, w] of want) {
    for (const x of w) scale = Math.max(scale, Math.abs(x));
    worst = Math.max(worst, maxAbsDiff(w, got.get(name)!));
  }
  expect(scale).toBeGreaterThan(0);
  return worst / scale;
}

type Result = Awaited<ReturnType<typeof lossAndGrads>>;

/**
 * Unpadded, the tensor-input loss runs the host path's kernels on the same shapes: the same bits.
 * Padded, only the reductions over masked positions and rows change order: float32 rounding.
 */
function expectClose(want: Result, got: Result, exact: boolean): void {
  if (exact) {
    expect(got.loss).toBe(want.loss);
    expect(gradError(want.grads, got.grads)).toBe(0);
    return;
  }
  expect(Math.abs(got.loss - want.loss)).toBeLessThan(1e-6 * want.loss);
  expect(gradError(want.grads, got.grads)).toBeLessThan(5e-6);
}

function dispose(inputs: object): void {
  for (const t of Object.values(inputs) as Tensor[]) t.dispose();
}

describe('tensor-input losses equal the host-input losses', () => {
  for (const name of TINY_MODELS) {
    for (const side of ['right', 'left'] as const) {
      it(`${name}, ${side} padding: SequenceClassifier.tensorLoss equals loss, unpadded and padded on both axes`, async () => {
        const model = (await loadTiny(name, backend)).unfreeze();
        const head = new SequenceClassifier(model, { numLabels: 3, generator: new Generator(3) });
        const batch = pad(tokenRows([5, 2, 7], model.config.vocabSize, 11), side, 1);
        const labels = [2, 0, 1];
        const want = await lossAndGrads(head, () => head.loss(batch, labels));
        expect(want.loss).toBeGreaterThan(0);
        const live = memoryInfo(backend).tensors;
        for (const padding of [{}, { batch: 5, seq: 16, padTokenId: 1 }]) {
          const inputs = upload(head.lossInputs(batch, labels, padding));
          const got = await lossAndGrads(head, () => head.tensorLoss(inputs));
          dispose(inputs);
          expectClose(want, got, Object.keys(padding).length === 0);
        }
        expect(memoryInfo(backend).tensors).toBe(live);
        head.dispose();
      });
    }

    it(`${name}: CausalLMHead.tensorLoss equals loss on answer-only labels, unpadded and padded on every axis`, async () => {
      const model = (await loadTiny(name, backend)).unfreeze();
      const head = new CausalLMHead(model);
      const batch = pad(tokenRows([7, 4, 9], model.config.vocabSize, 13), 'right', 0);
      // The answer: the last 3, 2 and 4 real tokens of each row.
      const answers = [3, 2, 4];
      const labels = batch.inputIds.map((row, b) => {
        const real = batch.attentionMask[b]!.reduce((n, m) => n + m, 0);
        return row.map((id, t) => (t < real && t >= real - answers[b]! ? id : -100));
      });
      const want = await lossAndGrads(head, () => head.loss({ ...batch, labels }));
      for (const padding of [{}, { batch: 4, seq: 16, targets: 32 }]) {
        const host = head.lossInputs({ ...batch, labels }, padding);
        expect(host.targets.data.filter((x) => x !== -100)).toHaveLength(9);
        const inputs = upload(host);
        const got = await lossAndGrads(head, () => head.tensorLoss(inputs));
        dispose(inputs);
        expectClose(want, got, Object.keys(padding).length === 0);
      }
      head.dispose();
    });
  }

  it('a batch without any target: a zero loss that reaches the graph, with zero gradients, padded or not', async () => {
    const model = (await loadTiny('tiny-llama', backend)).unfreeze();
    const head = new CausalLMHead(model);
    const batch = pad(tokenRows([5, 3], model.config.vocabSize, 2), 'right');
    const labels = batch.inputIds.map((row) => row.map(() => -100));
    for (const padding of [{}, { batch: 4, seq: 8, targets: 16 }]) {
      const host = head.lossInputs({ ...batch, labels }, padding);
      expect(Array.from(host.targets.data)).toEqual(new Array(padding.targets ?? 1).fill(-100));
      const inputs = upload(host);
      const loss = head.tensorLoss(inputs);
      expect(loss.requiresGrad).toBe(true);
      expect(await loss.item()).toBe(0);
      backward(loss);
      loss.dispose();
      dispose(inputs);
      const w = head.lmHead.weight;
      expect(Math.max(...Array.from(await w.grad!.data(), Math.abs))).toBe(0);
      for (const [, p] of head.namedParameters()) {
        p.grad?.dispose();
        p.grad = null;
      }
    }
    head.dispose();
  });
});

describe('lossInputs: the host arrays', () => {
  it('pads the sequence axis on the right and the batch axis with one-token rows that count for nothing', async () => {
    const model = await loadTiny('tiny-gpt-neox', backend);
    const head = new SequenceClassifier(model, { numLabels: 3 });
    const batch = {
      inputIds: [
        [7, 8, 9],
        [5, 6, 2],
      ],
      attentionMask: [
        [1, 1, 1],
        [1, 1, 0],
      ],
    };
    const host = head.lossInputs(batch, [1, 2], { batch: 3, seq: 5, padTokenId: 2 });
    expect(host.inputIds).toEqual({ shape: [3, 5], dtype: 'int32', data: Int32Array.from([7, 8, 9, 2, 2, 5, 6, 2, 2, 2, 2, 2, 2, 2, 2]) });
    expect(Array.from(host.attentionMask.data)).toEqual([1, 1, 1, 0, 0, 1, 1, 0, 0, 0, 1, 0, 0, 0, 0]);
    // As prepareInput derives them: the real tokens before each real one, 1 on padding.
    expect(Array.from(host.positionIds.data)).toEqual([0, 1, 2, 1, 1, 0, 1, 1, 1, 1, 0, 1, 1, 1, 1]);
    expect(Array.from(host.poolIndex.data)).toEqual([2, 6, 10]);
    expect(Array.from(host.labels.data)).toEqual([1, 2, -100]);
    // Left padding: positions count real tokens only and the pooled position is the row's end.
    const left = head.lossInputs({ inputIds: batch.inputIds, attentionMask: [batch.attentionMask[0]!, [0, 1, 1]] }, [0, 0], { seq: 4 });
    expect(Array.from(left.positionIds.data)).toEqual([0, 1, 2, 1, 1, 0, 1, 1]);
    expect(Array.from(left.poolIndex.data)).toEqual([2, 6]);
    const lm = new CausalLMHead(model);
    const labels = [
      [-100, 8, 9],
      [-100, -100, -100],
    ];
    const t = lm.lossInputs({ ...batch, labels }, { batch: 3, seq: 5, targets: 4 });
    // Position t predicts the label at t + 1, on the padded grid (row · 5 + position).
    expect(Array.from(t.targetRows.data)).toEqual([0, 1, 0, 0]);
    expect(Array.from(t.targets.data)).toEqual([8, 9, -100, -100]);
    model.dispose();
  });

  it('refuses padding below the batch, host ids outside the vocabulary and tensor inputs of the wrong shape or dtype', async () => {
    const model = await loadTiny('tiny-gpt-neox', backend);
    const head = new SequenceClassifier(model, { numLabels: 3 });
    const lm = new CausalLMHead(model);
    const batch = { inputIds: [[7, 8, 9]], attentionMask: [[1, 1, 1]] };
    expect(() => head.lossInputs(batch, [0], { seq: 2 })).toThrow(
      "SequenceClassifier.lossInputs: pad.seq is 2; it must be an integer >= 3, the batch's own",
    );
    expect(() => head.lossInputs(batch, [3])).toThrow('SequenceClassifier.lossInputs: labels[0] = 3 is outside [0, 3)');
    expect(() => head.lossInputs(batch, [0], { padTokenId: -1 })).toThrow('pad.padTokenId -1 is outside the vocabulary');
    expect(() => lm.lossInputs({ ...batch, labels: [[-100, 8, 9]] }, { targets: 1 })).toThrow(
      "CausalLMHead.lossInputs: pad.targets is 1; it must be an integer >= 2, the batch's target rows",
    );
    const inputs = upload(head.lossInputs(batch, [0]));
    const square = reshape(inputs.labels, [1, 1]);
    expect(() => head.tensorLoss({ ...inputs, poolIndex: square })).toThrow(
      /^SequenceClassifier\.tensorLoss: input poolIndex is tensor #\d+ \[1, 1\] int32; expected int32 \[1\]$/,
    );
    square.dispose();
    const floatIds = tensor([1, 2, 3], [1, 3], { backend });
    expect(() => head.tensorLoss({ ...inputs, inputIds: floatIds })).toThrow(
      /input inputIds is tensor #\d+ \[1, 3\] float32; expected int32 \[…, …\]$/,
    );
    expect(() => lm.tensorLoss({ ...inputs, targetRows: inputs.poolIndex } as never)).toThrow(
      'CausalLMHead.tensorLoss: input targets is missing or not a tensor',
    );
    floatIds.dispose();
    dispose(inputs);
    model.dispose();
  });

  it('a model with dynamic rope (its base depends on the longest position) has no tensor-input loss, and says so', async () => {
    const model = await loadModel(join(FIXTURES, 'hf-llama-v5-dynamic'), { backend });
    expect(supportsTensorLoss(model.config)).toBe(false);
    const head = new SequenceClassifier(model, { numLabels: 2 });
    const inputs = upload(head.lossInputs({ inputIds: [[3, 4]] }, [1]));
    expect(() => head.tensorLoss(inputs)).toThrow(
      'SequenceClassifier.tensorLoss: rope_type "dynamic" sets its rotary base from the batch\'s longest position on the host, so this model has no tensor-input loss; use loss() with host inputs',
    );
    dispose(inputs);
    model.dispose();
  });
});

describe('rope types whose tables are computed on the host travel as float32 inputs', () => {
  const cases = [
    ['hf-llama-v4', 'llama3'],
    ['hf-gpt-neox-v5-yarn', 'yarn'],
    ['hf-llama-v5-longrope', 'longrope'],
    ['hf-gpt-neox-v4-linear', 'linear'],
  ] as const;
  for (const [folder, type] of cases) {
    it(`${type}: tensorLoss equals loss, unpadded and padded`, async () => {
      const model = (await loadModel(join(FIXTURES, folder), { backend })).unfreeze();
      expect(model.config.rope.type).toBe(type);
      const head = new SequenceClassifier(model, { numLabels: 3, generator: new Generator(5) });
      // longrope switches to its long factors past 5 positions: one batch below, one above.
      for (const lengths of [
        [3, 4],
        [7, 3],
      ]) {
        const batch = pad(tokenRows(lengths, model.config.vocabSize, 17), 'right');
        const labels = [1, 2];
        const want = await lossAndGrads(head, () => head.loss(batch, labels));
        for (const padding of [{}, { batch: 3, seq: 16 }]) {
          const host = head.lossInputs(batch, labels, padding);
          const tables = type !== 'linear';
          expect(host.ropeCos?.shape.slice(0, 3)).toEqual(
            tables ? [padding.batch ?? 2, padding.seq ?? Math.max(...lengths), 1] : undefined,
          );
          expect(host.ropeSin?.dtype).toBe(tables ? 'float32' : undefined);
          const inputs = upload(host);
          const got = await lossAndGrads(head, () => head.tensorLoss(inputs));
          dispose(inputs);
          expectClose(want, got, Object.keys(padding).length === 0);
        }
      }
      if (type !== 'linear') {
        const inputs = upload(head.lossInputs(pad([[3, 4]], 'right'), [0]));
        const { ropeSin: _, ...missing } = inputs;
        expect(() => head.tensorLoss(missing)).toThrow(
          /^SequenceClassifier\.tensorLoss: input ropeSin is missing or not a tensor: expected float32 \[1, 2, 1, \d+\]$/,
        );
        dispose(inputs);
      }
      head.dispose();
    });
  }
});
