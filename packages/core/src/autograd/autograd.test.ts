import { createCpuBackend } from '@peft/backend-cpu';
import { afterAll, describe, expect, it } from 'vitest';
import type { Backend, MatmulParams } from '../backend.js';
import { memoryInfo, tidy } from '../memory.js';
import { add, cast, dropout, linear, matmul, mul, square, sum, tanh } from '../ops/index.js';
import { Generator } from '../random/generator.js';
import { type Tensor, tensor } from '../tensor.js';
import { checkpoint } from './checkpoint.js';
import { backward, noGrad, tapeLength } from './tape.js';

const backend = createCpuBackend();
afterAll(() => backend.destroy());

/** Counts GEMMs by wrapping the backend's matmul. */
function countingMatmul(b: Backend): { count: () => number; restore: () => void } {
  const original = b.matmul.bind(b);
  let n = 0;
  (b as { matmul: Backend['matmul'] }).matmul = (out, a, bb, p: MatmulParams) => {
    n++;
    original(out, a, bb, p);
  };
  return { count: () => n, restore: () => ((b as { matmul: Backend['matmul'] }).matmul = original) };
}

describe('autograd', () => {
  it('gives each tensor a gradient of its own dtype (PyTorch semantics), also across mixed-dtype ops', async () => {
    // x bfloat16 + y float32 → a float32 sum; x's gradient comes back as bfloat16, y's as float32.
    const x = tensor([1, 2, 3, 4], [2, 2], { backend, dtype: 'bfloat16', requiresGrad: true });
    const y = tensor([0.5, 0.5, 0.5, 0.5], [2, 2], { backend, dtype: 'float32', requiresGrad: true });
    const s = add(x, y);
    expect(s.dtype).toBe('float32');
    backward(sum(mul(s, s)));
    expect(x.grad?.dtype).toBe('bfloat16');
    expect(y.grad?.dtype).toBe('float32');
    expect(await x.grad!.array()).toEqual([
      [3, 5],
      [7, 9],
    ]);
    // LoRA's first product: bfloat16 activations against a float32 adapter weight.
    const h = tensor([1, -1, 2, 0.5], [2, 2], { backend, dtype: 'bfloat16', requiresGrad: true });
    const a = tensor([0.25, 0.5, -1, 2], [2, 2], { backend, dtype: 'float32', requiresGrad: true });
    backward(sum(linear(h, a)));
    expect(h.grad?.dtype).toBe('bfloat16');
    expect(a.grad?.dtype).toBe('float32');
    for (const t of [x, y, s, h, a]) t.dispose();
  });

  it('add(a, b, { dtype }) rounds the float32 sum once into the given dtype, gradients in their tensors’ dtypes', async () => {
    const x = tensor([1, 2, 3, 4], [2, 2], { backend, dtype: 'bfloat16', requiresGrad: true });
    const y = tensor([0.001953125, 1e-3, 0.5, 3], [2, 2], { backend, dtype: 'float32', requiresGrad: true });
    const direct = add(x, y, { dtype: 'bfloat16' });
    expect(direct.dtype).toBe('bfloat16');
    const viaFloat32 = add(x, y);
    // 1 + 2⁻⁹ rounds (to even) to 1 in bfloat16; the sum is not rounded twice.
    expect(await direct.data()).toEqual(await cast(viaFloat32, 'bfloat16').data());
    backward(sum(direct));
    expect(x.grad?.dtype).toBe('bfloat16');
    expect(y.grad?.dtype).toBe('float32');
    expect(() => add(x, y, { dtype: 'int32' })).toThrow(/add: dtype must be a float dtype/);
    for (const t of [x, y, direct, viaFloat32]) t.dispose();
  });

  it('computes gradients of a linear layer with a squared loss', async () => {
    // y = x·Wᵀ + b, L = Σ y²  →  dL/dW = 2 yᵀ x, dL/db = 2 Σ_rows y, dL/dx = 2 y W
    const x = tensor([1, 2, -1, 0.5], [2, 2], { backend, requiresGrad: true });
    const w = tensor([0.5, -1, 2, 0.25, 1, 1], [3, 2], { backend, requiresGrad: true });
    const b = tensor([0.1, 0.2, 0.3], [3], { backend, requiresGrad: true });
    const loss = tidy(() => sum(square(linear(x, w, b))));
    // y row 0 = [0.5-2+0.1, 2+0.5+0.2, 1+2+0.3] = [-1.4, 2.7, 3.3]; row 1 = [-0.5-0.5+0.1, -2+0.125+0.2, -1+0.5+0.3] = [-0.9, -1.675, -0.2]
    expect(await loss.item()).toBeCloseTo(1.96 + 7.29 + 10.89 + 0.81 + 2.805625 + 0.04, 4);
    backward(loss);
    const db = await b.grad!.data();
    for (const [i, v] of [-4.6, 2.05, 6.2].entries()) expect(db[i]).toBeCloseTo(v, 4);
    const dW = await w.grad!.data();
    const y = [
      [-1.4, 2.7, 3.3],
      [-0.9, -1.675, -0.2],
    ];
    const xs = [
      [1, 2],
      [-1, 0.5],
    ];
    for (let o = 0; o < 3; o++)
      for (let i = 0; i < 2; i++) expect(dW[o * 2 + i]).toBeCloseTo(2 * (y[0]![o]! * xs[0]![i]! + y[1]![o]! * xs[1]![i]!), 4);
    const dx = await x.grad!.data();
    const W = [
      [0.5, -1],
      [2, 0.25],
      [1, 1],
    ];
    for (let r = 0; r < 2; r++)
      for (let i = 0; i < 2; i++) expect(dx[r * 2 + i]).toBeCloseTo(2 * y[r]!.reduce((s, v, o) => s + v * W[o]![i]!, 0), 4);
    for (const t of [x, w, b, loss]) t.dispose();
  });

  it('never runs weight-gradient GEMMs for frozen weights (LoRA costs three backward GEMMs, not four)', () => {
    const gen = new Generator(1);
    const x = tensor(
      Array.from({ length: 8 * 16 }, (_, i) => Math.sin(i)),
      [8, 16],
      { backend },
    );
    const W = tensor(
      Array.from({ length: 16 * 16 }, (_, i) => Math.cos(i)),
      [16, 16],
      { backend },
    ); // frozen
    const A = tensor(
      Array.from({ length: 4 * 16 }, (_, i) => Math.sin(3 * i)),
      [4, 16],
      { backend, requiresGrad: true },
    );
    const B = tensor(
      Array.from({ length: 16 * 4 }, (_, i) => Math.cos(5 * i)),
      [16, 4],
      { backend, requiresGrad: true },
    );
    const spy = countingMatmul(backend);
    const loss = tidy(() => sum(tanh(add(linear(x, W), linear(linear(dropout(x, 0.1, gen), A), B)))));
    expect(spy.count()).toBe(3);
    backward(loss);
    // dB, d(x·Aᵀ) and dA; no dW (frozen) and no dx (x needs no grad).
    expect(spy.count()).toBe(3 + 3);
    spy.restore();
    expect(W.grad).toBeNull();
    expect(A.grad?.shape).toEqual([4, 16]);
    expect(B.grad?.shape).toEqual([16, 4]);
    for (const t of [x, W, A, B, loss]) t.dispose();
  });

  it('records nothing under noGrad and when no input requires grad', () => {
    const w = tensor([1, 2], [2], { backend, requiresGrad: true });
    const c = tensor([3, 4], [2], { backend });
    const before = tapeLength();
    const y = noGrad(() => mul(w, c));
    const z = mul(c, c);
    expect(tapeLength()).toBe(before);
    expect(y.requiresGrad).toBe(false);
    for (const t of [w, c, y, z]) t.dispose();
  });

  it('accumulates gradients over two backward passes, like PyTorch', async () => {
    const w = tensor([1, -2], [2], { backend, requiresGrad: true });
    for (let i = 0; i < 2; i++) {
      const loss = tidy(() => sum(square(w)));
      backward(loss);
      loss.dispose();
    }
    expect(Array.from(await w.grad!.data())).toEqual([4, -8]);
    w.dispose();
  });

  it('explains a backward from a tensor with no recorded history', () => {
    const c = tensor([1], [], { backend });
    expect(() => backward(c)).toThrow(/backward: tensor #\d+ \[\] float32 does not require grad/);
    c.dispose();
  });

  it('keeps the memory flat over 50 training-like steps', () => {
    const w = tensor(
      Array.from({ length: 32 * 32 }, (_, i) => Math.sin(i) / 8),
      [32, 32],
      { backend, requiresGrad: true },
    );
    const x = tensor(
      Array.from({ length: 4 * 32 }, (_, i) => Math.cos(i)),
      [4, 32],
      { backend },
    );
    // One step to create w.grad, then measure.
    const step = () => {
      const loss = tidy(() => sum(square(tanh(matmul(x, w, { transB: true })))));
      backward(loss);
      loss.dispose();
    };
    step();
    const start = memoryInfo(backend);
    const startBackend = backend.memory();
    for (let i = 0; i < 50; i++) step();
    expect(memoryInfo(backend)).toEqual(start);
    expect(backend.memory().bytes).toBe(startBackend.bytes);
    expect(tapeLength()).toBe(0);
    w.dispose();
    x.dispose();
  });

  it('gradient checkpointing gives the same gradients, dropout included', async () => {
    const gen = new Generator(7);
    const w1 = tensor(
      Array.from({ length: 36 }, (_, i) => Math.sin(i + 1)),
      [6, 6],
      { backend, requiresGrad: true },
    );
    const w2 = tensor(
      Array.from({ length: 36 }, (_, i) => Math.cos(i + 2)),
      [6, 6],
      { backend, requiresGrad: true },
    );
    const x = tensor(
      Array.from({ length: 18 }, (_, i) => Math.sin(2 * i)),
      [3, 6],
      { backend, requiresGrad: true },
    );
    const block = (h: Tensor): Tensor => tanh(linear(dropout(tanh(linear(h, w1)), 0.3, gen), w2));
    const run = async (useCheckpoint: boolean): Promise<Float32Array[]> => {
      gen.manualSeed(7);
      const loss = tidy(() => sum(square(useCheckpoint ? checkpoint(block, [x]) : block(x))));
      backward(loss);
      loss.dispose();
      const grads = [await w1.grad!.data(), await w2.grad!.data(), await x.grad!.data()] as Float32Array[];
      for (const t of [w1, w2, x]) {
        t.grad!.dispose();
        t.grad = null;
      }
      return grads;
    };
    const plain = await run(false);
    const ckpt = await run(true);
    for (let i = 0; i < 3; i++) expect(Array.from(ckpt[i]!)).toEqual(Array.from(plain[i]!));
    for (const t of [w1, w2, x]) t.dispose();
  });
});
