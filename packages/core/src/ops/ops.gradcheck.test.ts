import { createCpuBackend } from '@peft/backend-cpu';
import { afterAll, describe, expect, it } from 'vitest';
import { backward, noGrad } from '../autograd/tape.js';
import { tidy } from '../memory.js';
import { Generator } from '../random/generator.js';
import { philoxUniform } from '../random/philox.js';
import { type Tensor, tensor } from '../tensor.js';
import * as ops from './index.js';
import { exampleDropout } from './random.js';

/**
 * Finite-difference checks of every differentiable op through the autograd tape on the CPU
 * backend: L = Σ f(inputs) ⊙ R for a fixed random R; analytic dL/dinput from `backward`
 * against central differences (float32, so eps and tolerances are those of float32 arithmetic).
 */
const backend = createCpuBackend();
afterAll(() => backend.destroy());

interface Input {
  shape: number[];
  /** Values; default uniform in [-1, 1). */
  values?: number[];
  dtype?: 'float32' | 'int32';
  grad?: boolean;
}

let seed = 100;
function uniform(n: number, lo = -1, hi = 1): number[] {
  return Array.from(philoxUniform(seed++, 0, n, lo, hi));
}

async function gradcheck(inputs: Input[], f: (...xs: Tensor[]) => Tensor, opts: { eps?: number; tol?: number } = {}): Promise<void> {
  const eps = opts.eps ?? 1e-2;
  const tol = opts.tol ?? 1e-2;
  const values = inputs.map((inp) => inp.values ?? uniform(inp.shape.reduce((a, b) => a * b, 1)));
  const make = (vals: number[][], grad: boolean) =>
    inputs.map((inp, i) =>
      tensor(vals[i]!, inp.shape, {
        backend,
        dtype: inp.dtype ?? 'float32',
        requiresGrad: grad && inp.dtype !== 'int32' && inp.grad !== false,
      }),
    );
  // Fixed projection R.
  const probe = noGrad(() => tidy(() => f(...make(values, false))));
  const r = uniform(probe.size);
  const rShape = [...probe.shape];
  probe.dispose();
  const lossOf = async (vals: number[][]): Promise<number> => {
    const xs = make(vals, false);
    const out = noGrad(() => tidy(() => f(...xs)));
    const data = await out.data();
    out.dispose();
    for (const x of xs) x.dispose();
    let s = 0;
    for (let i = 0; i < data.length; i++) s += data[i]! * r[i]!;
    return s;
  };
  const xs = make(values, true);
  const R = tensor(r, rShape, { backend });
  const loss = tidy(() => ops.sum(ops.mul(f(...xs), R)));
  backward(loss);
  loss.dispose();
  R.dispose();
  for (let i = 0; i < inputs.length; i++) {
    const x = xs[i]!;
    if (!x.requiresGrad) continue;
    const analytic = x.grad ? await x.grad.data() : new Float32Array(x.size);
    for (let j = 0; j < x.size; j++) {
      const plus = values.map((v) => [...v]);
      const minus = values.map((v) => [...v]);
      plus[i]![j]! += eps;
      minus[i]![j]! -= eps;
      const numeric = ((await lossOf(plus)) - (await lossOf(minus))) / (2 * eps);
      const err = Math.abs(analytic[j]! - numeric);
      if (err > tol * Math.max(1, Math.abs(numeric))) {
        throw new Error(`input ${i} element ${j}: autograd ${analytic[j]} vs finite difference ${numeric} (|diff| ${err})`);
      }
    }
  }
  for (const x of xs) x.dispose();
}

describe('gradients agree with finite differences', () => {
  it('add, sub, mul, div with broadcasting', async () => {
    await gradcheck([{ shape: [2, 3] }, { shape: [3] }], (a, b) => ops.add(a, b));
    await gradcheck([{ shape: [2, 1] }, { shape: [2, 3] }], (a, b) => ops.sub(a, b));
    await gradcheck([{ shape: [2, 3] }, { shape: [1, 3] }], (a, b) => ops.mul(a, b));
    await gradcheck([{ shape: [2, 3] }, { shape: [3], values: [1.5, -2, 0.75] }], (a, b) => ops.div(a, b));
  });

  it('unary ops and affine', async () => {
    const pos = { shape: [5], values: [0.3, 0.7, 1.1, 1.9, 2.5] };
    const away = { shape: [6], values: [-1.5, -0.7, -0.2, 0.3, 0.8, 1.4] };
    for (const f of [ops.exp, ops.tanh, ops.sigmoid, ops.silu, ops.square]) await gradcheck([{ shape: [2, 3] }], f);
    for (const f of [ops.log, ops.sqrt, ops.rsqrt]) await gradcheck([pos], f, { eps: 1e-3 });
    for (const f of [ops.abs, ops.relu]) await gradcheck([away], f);
    await gradcheck([{ shape: [4] }], (x) => ops.affine(x, -1.5, 0.25));
  });

  it('sum and mean over axes, keeping dims or not', async () => {
    await gradcheck([{ shape: [2, 3, 4] }], (x) => ops.sum(x, [0, 2]));
    await gradcheck([{ shape: [2, 3, 4] }], (x) => ops.mean(x, 1, true));
    await gradcheck([{ shape: [2, 3] }], (x) => ops.reshape(ops.sum(x), [1]));
  });

  it('shape ops', async () => {
    await gradcheck([{ shape: [2, 3, 4] }], (x) => ops.permute(x, [2, 0, 1]));
    await gradcheck([{ shape: [2, 6] }], (x) => ops.reshape(x, [3, -1]));
    await gradcheck([{ shape: [3, 5] }], (x) => ops.slice(x, 1, 1, 4));
    await gradcheck([{ shape: [2, 2] }, { shape: [2, 3] }], (a, b) => ops.concat([a, b], 1));
    await gradcheck([{ shape: [3, 1] }], (x) => ops.expand(x, [2, 3, 4]));
    await gradcheck([{ shape: [4] }], (x) => ops.cast(ops.cast(x, 'bfloat16'), 'float32'), { eps: 0.25, tol: 3e-2 });
  });

  it('matmul with every transpose combination, batched and with a shared weight', async () => {
    for (const transA of [false, true]) {
      for (const transB of [false, true]) {
        const a = transA ? [3, 2] : [2, 3];
        const b = transB ? [4, 3] : [3, 4];
        await gradcheck([{ shape: a }, { shape: b }], (x, y) => ops.matmul(x, y, { transA, transB }));
        await gradcheck([{ shape: [2, ...a] }, { shape: [2, ...b] }], (x, y) => ops.matmul(x, y, { transA, transB }));
      }
    }
    await gradcheck([{ shape: [2, 3, 5] }, { shape: [4, 5] }, { shape: [4] }], (x, w, bias) => ops.linear(x, w, bias));
  });

  it('linearSum: products accumulated into one output, with and without bias, and its unfused form', async () => {
    await gradcheck(
      [{ shape: [2, 3, 5] }, { shape: [4, 5] }, { shape: [2, 3, 2] }, { shape: [4, 2] }, { shape: [4] }],
      (x, w, u, b, bias) =>
        ops.linearSum(
          [
            [x, w],
            [u, b],
          ],
          bias,
        ),
    );
    await gradcheck([{ shape: [3, 5] }, { shape: [4, 5] }, { shape: [3, 6] }, { shape: [4, 6] }], (x, w, u, b) =>
      ops.linearSum([
        [x, w],
        [u, b],
      ]),
    );
    // A bias of shape [1, 4] is no [out] vector: the unfused form (add with broadcasting) takes it.
    await gradcheck([{ shape: [3, 5] }, { shape: [4, 5] }, { shape: [1, 4] }], (x, w, bias) => ops.linearSum([[x, w]], bias));
  });

  it('embedding and gatherRows', async () => {
    await gradcheck([{ shape: [5, 3] }, { shape: [2, 3], values: [4, 0, 4, 1, 2, 4], dtype: 'int32' }], (w, ids) => ops.embedding(w, ids));
    await gradcheck([{ shape: [6, 2] }, { shape: [3], values: [5, 1, 5], dtype: 'int32' }], (x, idx) => ops.gatherRows(x, idx));
  });

  it('layerNorm and rmsNorm with affine parameters', async () => {
    await gradcheck([{ shape: [3, 5] }, { shape: [5] }, { shape: [5] }], (x, w, b) => ops.layerNorm(x, w, b, 1e-5));
    await gradcheck([{ shape: [3, 5] }], (x) => ops.layerNorm(x, null, null, 1e-5));
    await gradcheck([{ shape: [3, 5] }, { shape: [5] }], (x, w) => ops.rmsNorm(x, w, 1e-6));
  });

  it('rotary with a partial rotary dimension', async () => {
    await gradcheck([{ shape: [2, 3, 2, 6] }, { shape: [2, 3], values: [0, 1, 2, 5, 6, 7], dtype: 'int32' }], (x, pos) =>
      ops.rotary(x, pos, { rotaryDim: 4, base: 10000 }),
    );
  });

  it('attention: causal, padded, grouped-query', async () => {
    const mask = { shape: [2, 4], values: [1, 1, 1, 1, 0, 1, 1, 1], dtype: 'int32' as const };
    await gradcheck([{ shape: [2, 4, 2, 3] }, { shape: [2, 4, 1, 3] }, { shape: [2, 4, 1, 3] }, mask], (q, k, v, m) =>
      ops.attention(q, k, v, m, { causal: true }),
    );
    await gradcheck([{ shape: [1, 2, 2, 3] }, { shape: [1, 5, 2, 3] }, { shape: [1, 5, 2, 3] }], (q, k, v) =>
      ops.attention(q, k, v, null, { causal: true }),
    );
  });

  it('activations', async () => {
    await gradcheck([{ shape: [7] }], (x) => ops.gelu(x, false));
    await gradcheck([{ shape: [7] }], (x) => ops.gelu(x, true));
    await gradcheck([{ shape: [2, 3] }, { shape: [2, 3] }], (g, u) => ops.siluMul(g, u));
  });

  it('cross-entropy with ignored targets, mean and sum', async () => {
    await gradcheck([{ shape: [4, 5] }], (x) => ops.crossEntropy(x, [1, -100, 4, 0]));
    await gradcheck([{ shape: [2, 3] }], (x) => ops.crossEntropy(x, [2, 0], { reduction: 'sum' }));
    await gradcheck([{ shape: [3, 3] }], (x) => ops.crossEntropy(x, [2, 0, -100], { reduction: 'none' }));
  });

  it('dropout (same mask in the probe, the differences and backward)', async () => {
    const gen = new Generator(3);
    await gradcheck([{ shape: [12] }], (x) => {
      gen.manualSeed(3);
      return ops.dropout(x, 0.4, gen);
    });
  });

  it('per-example dropout (each row its own mask, regenerated in backward)', async () => {
    await gradcheck([{ shape: [3, 2, 4] }], (x) => exampleDropout(x, 0.4, { seed: 3, step: 2, stream: 1, keys: [6, 0, 9] }));
    await gradcheck([{ shape: [1, 5] }], (x) => exampleDropout(x, 0.4, { seed: 3, step: 0, stream: 0, keys: [2] }));
    await gradcheck([{ shape: [3, 4] }], (x) =>
      exampleDropout(x, 0.4, { seed: 3, step: 1, stream: 2, keys: [4, 4, 1], positions: [2, 3, 0] }),
    );
  });
});

describe('errors name the op and the values', () => {
  it('cross-entropy target out of range', () => {
    const x = tensor([0, 0, 0, 0], [2, 2], { backend });
    expect(() => ops.crossEntropy(x, [0, 5])).toThrow('crossEntropy: target 5 at row 1 is outside [0, 2) and is not ignoreIndex -100');
    x.dispose();
  });

  it('permute and slice arguments', () => {
    const x = tensor([1, 2, 3, 4, 5, 6], [2, 3], { backend });
    expect(() => ops.permute(x, [0, 0])).toThrow('permute: dims [0, 0] are not a permutation of 0..1');
    expect(() => ops.slice(x, 1, 2, 5)).toThrow(/slice: range \[2, 5\) is outside axis 1 of tensor #\d+ \[2, 3\] float32/);
    expect(() => ops.reshape(x, [4, -1])).toThrow(/reshape: cannot reshape tensor #\d+ \[2, 3\] float32 to \[4, -1\]/);
    x.dispose();
  });

  it('attention head counts', () => {
    const q = tensor(new Array(12).fill(0), [1, 1, 3, 4], { backend });
    const k = tensor(new Array(8).fill(0), [1, 1, 2, 4], { backend });
    expect(() => ops.attention(q, k, k, null)).toThrow('attention: 3 query heads are not a multiple of 2 key/value heads');
    q.dispose();
    k.dispose();
  });
});
