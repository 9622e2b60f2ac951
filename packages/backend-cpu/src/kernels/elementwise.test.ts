import type { UnaryOp } from '@peft/core';
import { describe, expect, it } from 'vitest';
import { backend, download, expectClose, expectGradClose, numericGrad, randomValues, upload } from '../test-helpers.js';

const xs = [-2, -0.5, 0, 0.25, 1, 3];

describe('unary', () => {
  it('computes each op', async () => {
    const be = backend();
    const x = upload(be, xs);
    const out = be.alloc('float32', xs.length);
    const sig = (v: number) => 1 / (1 + Math.exp(-v));
    const cases: [UnaryOp, (v: number) => number][] = [
      ['neg', (v) => -v],
      ['exp', Math.exp],
      ['log', Math.log],
      ['sqrt', Math.sqrt],
      ['rsqrt', (v) => 1 / Math.sqrt(v)],
      ['square', (v) => v * v],
      ['abs', Math.abs],
      ['silu', (v) => v * sig(v)],
      ['sigmoid', sig],
      ['tanh', Math.tanh],
      ['relu', (v) => Math.max(v, 0)],
    ];
    for (const [op, f] of cases) {
      be.unary(op, out, x);
      expectClose(await download(be, out), xs.map(f), 1e-6);
    }
    // spot values
    be.unary('sigmoid', out, x);
    expect((await download(be, out))[2]).toBe(0.5);
    be.unary('log', out, x);
    expect((await download(be, out)).slice(0, 3)).toEqual([Number.NaN, Number.NaN, Number.NEGATIVE_INFINITY]);
    be.destroy();
  });

  it('works in place and rounds to a bfloat16 output', async () => {
    const be = backend();
    const x = upload(be, [1, 2]);
    be.unary('exp', x, x);
    expectClose(await download(be, x), [Math.E, Math.E ** 2], 1e-6);
    const h = upload(be, [1, 2], 'bfloat16');
    be.unary('exp', h, h);
    expect(await download(be, h)).toEqual([2.71875, 7.375]);
    be.destroy();
  });

  it('unaryBackward matches central finite differences for every op', async () => {
    const be = backend();
    const x0 = [0.3, 0.7, 1.1, 1.9, 2.6]; // positive, away from the kinks of abs/relu, inside log/sqrt domains
    const neg = [-1.3, -0.4, 0.6, 1.2, -2.2];
    const w = randomValues(5, 3);
    const ops: UnaryOp[] = ['neg', 'exp', 'log', 'sqrt', 'rsqrt', 'square', 'abs', 'silu', 'sigmoid', 'tanh', 'relu'];
    for (const op of ops) {
      const x = op === 'log' || op === 'sqrt' || op === 'rsqrt' ? x0 : neg;
      const forward = async (v: number[]) => {
        const xb = upload(be, v);
        const yb = be.alloc('float32', v.length);
        be.unary(op, yb, xb);
        const y = await download(be, yb);
        be.free(xb);
        be.free(yb);
        return y.reduce((s, yi, i) => s + yi * w[i], 0);
      };
      const xb = upload(be, x);
      const yb = be.alloc('float32', x.length);
      be.unary(op, yb, xb);
      const dx = be.alloc('float32', x.length);
      be.unaryBackward(op, dx, upload(be, w), xb, yb);
      expectGradClose(await download(be, dx), await numericGrad(x, 1e-3, forward), 1e-2);
    }
    be.destroy();
  });

  it('unaryBackward conventions at 0: abs and relu give 0', async () => {
    const be = backend();
    const x = upload(be, [0, -1, 2]);
    const dy = upload(be, [5, 5, 5]);
    const dx = be.alloc('float32', 3);
    be.unaryBackward('abs', dx, dy, x, x);
    expect(await download(be, dx)).toEqual([0, -5, 5]);
    be.unaryBackward('relu', dx, dy, x, x);
    expect(await download(be, dx)).toEqual([0, 0, 5]);
    be.destroy();
  });
});

describe('affine', () => {
  it('computes x·alpha + beta', async () => {
    const be = backend();
    const x = upload(be, [1, -2, 0.5]);
    const out = be.alloc('float32', 3);
    be.affine(out, x, 2, 1);
    expect(await download(be, out)).toEqual([3, -3, 2]);
    expect(() => be.affine(be.alloc('float32', 4), x, 1, 0)).toThrow(/affine: x has 3 elements but the parameters need at least 4/);
    expect(() => be.unary('exp', be.alloc('float32', 2), x)).toThrow(
      /unary\(exp\): x has 3 elements but the output has 2: elementwise operands must have the same size/,
    );
    be.destroy();
  });
});

describe('binary', () => {
  it('applies each op elementwise on contiguous views', async () => {
    const be = backend();
    const a = upload(be, [1, -2, 6, Number.NaN]);
    const b = upload(be, [4, 3, -2, 1]);
    const v = { shape: [4], strides: [1], offset: 0 };
    const out = be.alloc('float32', 4);
    const expectOp = async (op: 'add' | 'sub' | 'mul' | 'div' | 'max' | 'min', want: number[]) => {
      be.binary(op, out, a, v, b, v);
      expect(await download(be, out)).toEqual(want);
    };
    await expectOp('add', [5, 1, 4, Number.NaN]);
    await expectOp('sub', [-3, -5, 8, Number.NaN]);
    await expectOp('mul', [4, -6, -12, Number.NaN]);
    await expectOp('div', [0.25, -2 / 3, -3, Number.NaN].map(Math.fround));
    await expectOp('max', [4, 3, 6, Number.NaN]);
    await expectOp('min', [1, -2, -2, Number.NaN]);
    be.destroy();
  });

  it('broadcasts with stride 0 and reads transposed / offset views', async () => {
    const be = backend();
    const a = upload(be, [1, 2, 3, 4, 5, 6]); // [2, 3]
    const bias = upload(be, [9, 10, 20, 30]); // bias [10, 20, 30] at offset 1
    const out = be.alloc('float32', 6);
    be.binary('add', out, a, { shape: [2, 3], strides: [3, 1], offset: 0 }, bias, { shape: [2, 3], strides: [0, 1], offset: 1 });
    expect(await download(be, out)).toEqual([11, 22, 33, 14, 25, 36]);
    // out [3, 2] = aᵀ · column scale [2, 3] broadcast along columns of out
    const scale = upload(be, [2, 3]);
    be.binary('mul', out, a, { shape: [3, 2], strides: [1, 3], offset: 0 }, scale, { shape: [3, 2], strides: [0, 1], offset: 0 });
    expect(await download(be, out)).toEqual([2, 12, 4, 15, 6, 18]);
    // bf16 inputs, f16 output
    const h = upload(be, [1 / 3, 1], 'bfloat16');
    const o16 = be.alloc('float16', 2);
    be.binary('mul', o16, h, { shape: [2], strides: [1], offset: 0 }, h, { shape: [2], strides: [0], offset: 1 });
    expect(await be.read(o16)).toEqual(new Uint16Array([0x3558, 0x3c00])); // 0.333984375 in f16 = 0x3558 (exact)
    be.destroy();
  });

  it('allows out to alias an input and checks shapes', async () => {
    const be = backend();
    const a = upload(be, [1, 2, 3]);
    const v = { shape: [3], strides: [1], offset: 0 };
    be.binary('mul', a, a, v, a, { shape: [3], strides: [-1], offset: 2 });
    expect(await download(be, a)).toEqual([3, 4, 3]);
    expect(() => be.binary('add', a, a, v, a, { shape: [2], strides: [1], offset: 0 })).toThrow(
      /b view has shape \[2\] but the op needs \[3\]/,
    );
    be.destroy();
  });
});
