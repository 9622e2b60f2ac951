import { createCpuBackend } from '@peft/backend-cpu';
import { afterAll, describe, expect, it } from 'vitest';
import { getPeftModel, type LoraLinear } from '../adapters/index.js';
import { checkpoint } from '../autograd/checkpoint.js';
import { backward } from '../autograd/tape.js';
import { tanh } from '../ops/index.js';
import { linear } from '../ops/matmul.js';
import { EXAMPLE_ROW_COUNTERS, exampleDropout, exampleStreamSeed } from '../ops/random.js';
import { sum } from '../ops/reduce.js';
import { reshape } from '../ops/shape.js';
import { Generator } from '../random/generator.js';
import { philoxUniform } from '../random/philox.js';
import { type Tensor, tensor } from '../tensor.js';
import { Dropout, setDropoutExamples } from './dropout.js';
import { Linear } from './linear.js';
import { Module } from './module.js';

const backend = createCpuBackend();
afterAll(() => backend.destroy());

const F = 6;
let seed = 900;
const uniform = (n: number) => Array.from(philoxUniform(seed++, 0, n, -1, 1));

/** Example e's features at position s: the same values whatever batch holds it. */
const token = (e: number, s: number) => Array.from({ length: F }, (_, f) => Math.sin(e * 7.1 + s * 1.3 + f * 0.7) + 1.5);

/** A right-padded batch [keys.length, length, F] of these examples (padding: 9s, never read). */
function batch(keys: readonly number[], length: number, real = 3): Tensor {
  const data: number[] = [];
  for (const e of keys) for (let s = 0; s < length; s++) data.push(...(s < real ? token(e, s) : new Array(F).fill(9)));
  return tensor(data, [keys.length, length, F], { backend });
}

/** Row b's first `real` positions. */
async function rows(t: Tensor, real = 3): Promise<number[][]> {
  const [b, s, f] = t.shape as [number, number, number];
  const v = Array.from(await t.data());
  return Array.from({ length: b }, (_, i) => v.slice(i * s * f, i * s * f + real * f));
}

describe('per-example dropout masks', () => {
  it('draws position s of example k from counter k·2^26 + s·⌈F/4⌉ of the (seed, step, stream) key, as the Philox reference says', async () => {
    const keys = [5, 0, 11];
    for (const f of [6, 8]) {
      const x = tensor(new Array(3 * 2 * f).fill(1), [3, 2, f], { backend });
      const y = exampleDropout(x, 0.25, { seed: 42, step: 7, stream: 2, keys });
      const k = exampleStreamSeed(42, 7, 2);
      const got = Array.from(await y.data());
      const expected = keys.flatMap((key) =>
        [0, 1].flatMap((s) =>
          Array.from(philoxUniform(k, key * EXAMPLE_ROW_COUNTERS + s * Math.ceil(f / 4), f), (r) => (r >= 0.25 ? 1 / 0.75 : 0)),
        ),
      );
      expect(got).toEqual(expected.map(Math.fround));
      expect(new Set(got)).toEqual(new Set([0, Math.fround(1 / 0.75)]));
      for (const t of [x, y]) t.dispose();
    }
  });

  it('rows gathered from several examples (a key and a position each) get the masks of those positions in the whole batch', async () => {
    for (const f of [6, 8]) {
      const drop = new Dropout(0.5, new Generator(3));
      const values = uniform(3 * 4 * f);
      const x = tensor(values, [3, 4, f], { backend });
      drop.setExamples({ step: 1, keys: [7, 2, 9], stream: 4 });
      const whole = Array.from(await drop.forward(x).data());
      // Rows 1, 2 of example 0, row 3 of example 1 and row 0 of example 2, as a head gathers them.
      const rows = [1, 2, 7, 8];
      const input = tensor(
        rows.flatMap((r) => values.slice(r * f, (r + 1) * f)),
        [4, f],
        { backend },
      );
      drop.setExamples({ step: 1, keys: [7, 2, 9], stream: 4, gathered: { length: 4, rows } });
      const gathered = Array.from(await drop.forward(input).data());
      expect(gathered).toEqual(rows.flatMap((r) => whole.slice(r * f, (r + 1) * f)));
      // The same batch without the gathered rows: even split, as before.
      expect(Array.from(await drop.forward(x).data())).toEqual(whole);
    }
  });

  it('the stream key depends on seed, step and stream, each', () => {
    const k = exampleStreamSeed(1, 2, 3);
    expect(Number.isSafeInteger(k)).toBe(true);
    expect(new Set([k, exampleStreamSeed(0, 2, 3), exampleStreamSeed(1, 1, 3), exampleStreamSeed(1, 2, 4)]).size).toBe(4);
    expect(exampleStreamSeed(1, 2, 3)).toBe(k);
    expect(exampleStreamSeed(3, 2 ** 40, 5)).not.toBe(exampleStreamSeed(3, 0, 5));
  });

  it('one batch of 4 or two of 2, reordered, padded to other lengths, or flattened to tokens: the same mask per example', async () => {
    const gen = new Generator(17);
    const drop = new Dropout(0.5, gen);
    const whole = batch([3, 8, 1, 20], 5);
    drop.setExamples({ step: 4, keys: [3, 8, 1, 20], stream: 0 });
    const y = await rows(drop.forward(whole));
    drop.setExamples({ step: 4, keys: [1, 3], stream: 0 });
    const a = await rows(drop.forward(batch([1, 3], 3)));
    drop.setExamples({ step: 4, keys: [20, 8], stream: 0 });
    const b = await rows(drop.forward(batch([20, 8], 8)));
    expect([a[1], b[1], a[0], b[0]]).toEqual(y);
    // Positions flattened into axis 0 ([B·S, F], as a linear layer may see them).
    drop.setExamples({ step: 4, keys: [8, 20], stream: 0 });
    const flat = await drop.forward(reshape(batch([8, 20], 5), [10, F])).data();
    expect(Array.from(flat.slice(0, 3 * F))).toEqual(y[1]);
    expect(Array.from(flat.slice(5 * F, 8 * F))).toEqual(y[3]);
    // About half the elements dropped, others scaled by 2; the generator's stream is untouched.
    const kept = y.flat().filter((v) => v !== 0).length;
    expect(kept).toBeGreaterThan(20);
    expect(kept).toBeLessThan(52);
    expect(gen.offset).toBe(0);
    // Another step or another stream: other masks.
    drop.setExamples({ step: 5, keys: [3, 8, 1, 20], stream: 0 });
    expect(await rows(drop.forward(whole))).not.toEqual(y);
    drop.setExamples({ step: 4, keys: [3, 8, 1, 20], stream: 1 });
    expect(await rows(drop.forward(whole))).not.toEqual(y);
    // Without keys: the whole-tensor mask from the generator, which advances.
    drop.setExamples(null);
    drop.forward(whole);
    expect(gen.offset).toBe(Math.ceil(whole.size / 4));
    drop.eval();
    drop.setExamples({ step: 4, keys: [3, 8, 1, 20], stream: 0 });
    expect(Array.from(await drop.forward(whole).data())).toEqual(Array.from(await whole.data()));
  });

  it('LoRA in training mode: an example gets the same output in a batch of 4 as in a batch of 2 padded otherwise', async () => {
    const base = new Linear(F, 5, { backend, generator: new Generator(1) });
    const holder = new (class extends Module {
      readonly config = { modelType: 'x' };
    })();
    holder.registerModule('proj', base);
    const gen = new Generator(23);
    const peft = getPeftModel(holder, { targetModules: ['proj'], r: 2, loraAlpha: 4, loraDropout: 0.4 }, { generator: gen });
    const layer = peft.model.getSubmodule('proj') as LoraLinear;
    backend.write(layer.factors('default').b.buffer(), new Float32Array(uniform(5 * 2)));
    peft.train(true);
    const forward = async (keys: number[], length: number) => {
      expect(setDropoutExamples(peft, { step: 2, keys })).toBe(1);
      return rowsOf(layer.forward(batch(keys, length)), length);
    };
    const rowsOf = async (t: Tensor, length: number) => {
      const v = Array.from(await t.data());
      return Array.from({ length: t.shape[0]! }, (_, i) => v.slice(i * length * 5, i * length * 5 + 3 * 5));
    };
    const four = await forward([0, 1, 2, 3], 4);
    const two = [...(await forward([2, 0], 3)), ...(await forward([3, 1], 6))];
    for (const [i, e] of [2, 0, 3, 1].entries()) for (const [j, v] of two[i]!.entries()) expect(v).toBeCloseTo(four[e]![j]!, 6);
    // Dropout is on: evaluation mode gives other outputs.
    peft.train(false);
    const plain = await rowsOf(layer.forward(batch([0, 1, 2, 3], 4)), 4);
    expect(plain[0]!.some((v, j) => Math.abs(v - four[0]![j]!) > 1e-4)).toBe(true);
    expect(setDropoutExamples(peft, null)).toBe(1);
    expect((layer.lora_dropout.get('default') as Dropout).examples).toBeNull();
    peft.dispose();
  });

  it('gradients through a checkpointed block equal the plain ones (the recomputed masks are the same)', async () => {
    const w = tensor(uniform(F * F), [F, F], { backend, requiresGrad: true });
    const x = batch([4, 9], 3);
    const masks = { seed: 5, step: 1, stream: 0, keys: [4, 9] };
    const block = (h: Tensor) => tanh(linear(exampleDropout(tanh(linear(h, w)), 0.3, masks), w));
    backward(sum(block(x)));
    const plain = Array.from(await w.grad!.data());
    w.grad!.dispose();
    w.grad = null;
    backward(sum(checkpoint(block, [x])));
    const checkpointed = Array.from(await w.grad!.data());
    for (const [i, v] of checkpointed.entries()) expect(v).toBeCloseTo(plain[i]!, 5);
  });

  it('errors name the op, the tensor and the keys', () => {
    const x = batch([1, 2, 3], 2);
    const masks = { seed: 0, step: 0, stream: 0 };
    expect(() => exampleDropout(x, 0.1, { ...masks, keys: [1, 2, 3, 4] })).toThrow(
      /exampleDropout: tensor #\d+ \[3, 2, 6\] float32 has 6 rows of 6 features, which 4 example keys do not fit: give one key per example/,
    );
    expect(() => exampleDropout(x, 0.1, { ...masks, keys: [1, 2, 3], positions: [0, 1, 0] })).toThrow(
      'which 3 keys and 3 positions do not fit',
    );
    expect(() => exampleDropout(x, 0.1, { ...masks, keys: [1, 1, 1, 1, 1, 1], positions: [0, 1, 2, 3, 4, 2 ** 27] })).toThrow(
      'exampleDropout: position 134217728 (row 5) of 6 features is outside the 2^28 elements',
    );
    expect(() => exampleDropout(x, 0.1, { ...masks, keys: [1, -2, 3] })).toThrow(
      'exampleDropout: example key -2 (example 1) must be an integer in [0, 2^27)',
    );
    expect(() => exampleDropout(x, 0.1, { ...masks, keys: [1, 2, 2 ** 27] })).toThrow('example key 134217728 (example 2)');
    expect(() => exampleDropout(x, 0.1, { ...masks, step: -1, keys: [1, 2, 3] })).toThrow('exampleDropout: step -1');
    x.dispose();
  });
});
