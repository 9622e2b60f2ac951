import { createCpuBackend } from '@peft/backend-cpu';
import { afterAll, describe, expect, it } from 'vitest';
import { philoxUniform } from '../random/philox.js';
import { type Tensor, tensor } from '../tensor.js';
import { add, linear, linearSum, matmul } from './index.js';

const backend = createCpuBackend();
afterAll(() => backend.destroy());

let seed = 7;
const rand = (shape: number[], dtype: 'float32' | 'bfloat16' = 'float32'): Tensor =>
  tensor(
    Array.from(
      philoxUniform(
        seed++,
        0,
        shape.reduce((a, b) => a * b, 1),
        -1,
        1,
      ),
    ),
    shape,
    { backend, dtype },
  );

function maxRelDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let scale = 0;
  let worst = 0;
  for (let i = 0; i < a.length; i++) {
    scale = Math.max(scale, Math.abs(b[i]!));
    worst = Math.max(worst, Math.abs(a[i]! - b[i]!));
  }
  return worst / scale;
}

describe('linearSum', () => {
  it('accumulates every product and the bias into one output buffer', async () => {
    const x = rand([2, 5, 48]);
    const w = rand([40, 48]);
    const u = rand([2, 5, 8]);
    const b = rand([40, 8]);
    const bias = rand([40]);
    const before = backend.memory().buffers;
    backend.resetPeak();
    const base = backend.memory().bytes;
    const y = linearSum(
      [
        [x, w],
        [u, b],
      ],
      bias,
    );
    // Only the output was allocated: no [10, 40] product per term, no tensor for the bias sum.
    expect(backend.memory().buffers).toBe(before + 1);
    expect(backend.memory().peakBytes - base).toBe(2 * 5 * 40 * 4);
    expect(y.shape).toEqual([2, 5, 40]);
    const xw = matmul(x, w, { transB: true });
    const ub = matmul(u, b, { transB: true });
    const s1 = add(xw, ub);
    const want = add(s1, bias);
    expect(maxRelDiff(await y.data(), await want.data())).toBeLessThan(1e-6);
    for (const t of [x, w, u, b, bias, y, xw, ub, s1, want]) t.dispose();
  });

  it('is linear() for one term, and zeros for an empty reduction without bias', async () => {
    const x = rand([3, 6]);
    const w = rand([4, 6]);
    const bias = rand([4]);
    const y = linear(x, w, bias);
    const xw = matmul(x, w, { transB: true });
    const want = add(xw, bias);
    expect(maxRelDiff(await y.data(), await want.data())).toBeLessThan(1e-6);
    const empty = linearSum([[rand([3, 0]), rand([4, 0])]]);
    expect(Array.from(await empty.data())).toEqual(new Array(12).fill(0));
    const onlyBias = linearSum([[rand([3, 0]), rand([4, 0])]], bias);
    const b = Array.from(await bias.data());
    expect(Array.from(await onlyBias.data())).toEqual([...b, ...b, ...b]);
    for (const t of [x, w, bias, y, xw, want, empty, onlyBias]) t.dispose();
  });

  it('sums mixed dtypes with add (promoting), exactly as the separate ops do', async () => {
    const x = rand([3, 6], 'bfloat16');
    const w = rand([4, 6], 'bfloat16');
    const u = rand([3, 2]);
    const b = rand([4, 2]);
    const y = linearSum([
      [x, w],
      [u, b],
    ]);
    expect(y.dtype).toBe('float32');
    const xw = matmul(x, w, { transB: true });
    const ub = matmul(u, b, { transB: true });
    const want = add(xw, ub);
    expect(Array.from(await y.data())).toEqual(Array.from(await want.data()));
    for (const t of [x, w, u, b, y, xw, ub, want]) t.dispose();
  });

  it('names the mismatch when shapes do not fit', () => {
    const x = rand([3, 6]);
    const w = rand([4, 5]);
    expect(() => linearSum([[x, w]])).toThrow('matmul: inner dimensions differ: a is [3, 6], b is [4, 5]ᵀ (6 vs 5)');
    expect(() => linearSum([])).toThrow('linear: needs at least one (input, weight) pair');
    x.dispose();
    w.dispose();
  });
});
