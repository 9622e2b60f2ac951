import { type DType, decode, encode, type MatmulParams } from '@peft/core';
import { afterEach, describe, expect, it } from 'vitest';
import { createCpuBackend } from '../backend.js';
import type { SgemmArgs, SgemmEngine } from '../gemm/index.js';
import { backend, download, expectClose, randomValues, upload } from '../test-helpers.js';
import { matmulBlocking } from './matmul.js';

/** Naive out[bi] = alpha · op(a) · op(b) (+ acc) in double precision. */
function naive(a: number[], b: number[], p: MatmulParams, acc: number[] | null): number[] {
  const out = acc ? acc.slice() : [];
  for (let bi = 0; bi < p.batch; bi++) {
    for (let i = 0; i < p.m; i++) {
      for (let j = 0; j < p.n; j++) {
        let s = 0;
        for (let t = 0; t < p.k; t++) {
          const av = p.transA ? a[bi * p.strideA + t * p.m + i] : a[bi * p.strideA + i * p.k + t];
          const bv = p.transB ? b[bi * p.strideB + j * p.k + t] : b[bi * p.strideB + t * p.n + j];
          s += av * bv;
        }
        const at = bi * p.strideOut + i * p.n + j;
        out[at] = p.alpha * s + (p.accumulate || (p.strideOut === 0 && bi > 0) ? (out[at] ?? 0) : 0);
      }
    }
  }
  return out;
}

function params(over: Partial<MatmulParams>): MatmulParams {
  return {
    batch: 1,
    m: 2,
    n: 3,
    k: 4,
    transA: false,
    transB: false,
    strideA: 0,
    strideB: 0,
    strideOut: 0,
    alpha: 1,
    accumulate: false,
    ...over,
  };
}

describe('matmul', () => {
  it('multiplies a hand-computed 2×2 · 2×2', async () => {
    const be = backend();
    const a = upload(be, [1, 2, 3, 4]);
    const b = upload(be, [5, 6, 7, 8]);
    const out = be.alloc('float32', 4);
    be.matmul(out, a, b, params({ m: 2, n: 2, k: 2 }));
    expect(await download(be, out)).toEqual([19, 22, 43, 50]);
    be.matmul(out, a, b, params({ m: 2, n: 2, k: 2, transA: true })); // aᵀ·b
    expect(await download(be, out)).toEqual([26, 30, 38, 44]);
    be.matmul(out, a, b, params({ m: 2, n: 2, k: 2, transB: true })); // a·bᵀ
    expect(await download(be, out)).toEqual([17, 23, 39, 53]);
    be.matmul(out, a, b, params({ m: 2, n: 2, k: 2, transA: true, transB: true, alpha: 0.5, accumulate: true }));
    expect(await download(be, out)).toEqual([17 + 11.5, 23 + 15.5, 39 + 17, 53 + 23]);
    be.destroy();
  });

  it('matches a naive product for every transpose flag, batch strides and broadcast', async () => {
    const be = backend();
    const [m, n, k, batch] = [3, 5, 4, 3];
    for (const transA of [false, true]) {
      for (const transB of [false, true]) {
        for (const [strideA, strideB] of [
          [m * k, k * n],
          [0, k * n],
          [m * k + 2, 0],
        ]) {
          const p = params({ batch, m, n, k, transA, transB, strideA, strideB, strideOut: m * n + 1, alpha: 0.75, accumulate: true });
          const av = randomValues((batch - 1) * strideA + m * k, 1);
          const bv = randomValues((batch - 1) * strideB + k * n, 2);
          const ov = randomValues((batch - 1) * p.strideOut + m * n, 3);
          const out = upload(be, ov);
          be.matmul(out, upload(be, av), upload(be, bv), p);
          expectClose(await download(be, out), naive(av, bv, p, ov), 1e-5);
        }
      }
    }
    be.destroy();
  });

  it('matches the naive product on sizes large enough for the fast engine', async () => {
    const be = backend();
    const [m, n, k, batch] = [37, 53, 41, 2];
    for (const [transA, transB] of [
      [false, true],
      [true, false],
    ]) {
      const p = params({ batch, m, n, k, transA, transB, strideA: m * k, strideB: 0, strideOut: m * n, alpha: 1.5, accumulate: false });
      const av = randomValues(batch * m * k, 6);
      const bv = randomValues(k * n, 7);
      const out = be.alloc('float32', batch * m * n);
      be.matmul(out, upload(be, av), upload(be, bv), p);
      expectClose(await download(be, out), naive(av, bv, p, null), 1e-5);
    }
    be.destroy();
  });

  it('strideOut 0 sums the batch into one matrix (backward of a broadcast operand)', async () => {
    const be = backend();
    const p = params({ batch: 3, m: 2, n: 2, k: 3, transA: true, strideA: 6, strideB: 6, strideOut: 0 });
    const av = randomValues(18, 4);
    const bv = randomValues(18, 5);
    const out = upload(be, [100, 100, 100, 100]);
    be.matmul(out, upload(be, av), upload(be, bv), p);
    expectClose(await download(be, out), naive(av, bv, p, [0, 0, 0, 0]), 1e-5);
    be.destroy();
  });

  it('reads bfloat16 / float16 inputs and rounds to a 16-bit output', async () => {
    const be = backend();
    const av = [1 / 3, 2, -1, 0.1];
    const bv = [3, 0.5, 1, 1];
    const a = upload(be, av, 'bfloat16');
    const b = upload(be, bv, 'float16');
    const out = be.alloc('bfloat16', 4);
    be.matmul(out, a, b, params({ m: 2, n: 2, k: 2 }));
    const ra = [0.333984375, 2, -1, 0.10009765625]; // bf16 values of a
    const rb = [3, 0.5, 1, 1];
    const exact = [
      ra[0] * rb[0] + ra[1] * rb[2],
      ra[0] * rb[1] + ra[1] * rb[3],
      ra[2] * rb[0] + ra[3] * rb[2],
      ra[2] * rb[1] + ra[3] * rb[3],
    ];
    const got = await download(be, out);
    const bits = await be.read(out);
    expectClose(got, exact, 2 ** -7);
    // the stored value is the bf16 rounding of the float32 result
    const want = new Uint16Array(exact.length);
    for (let i = 0; i < exact.length; i++) {
      const f = new Float32Array([exact[i]]);
      const u = new Uint32Array(f.buffer)[0];
      want[i] = (u + 0x7fff + ((u >>> 16) & 1)) >>> 16;
    }
    expect(bits).toEqual(want);
    // accumulate into a f16 output
    const o16 = upload(be, [1, 1, 1, 1], 'float16');
    be.matmul(o16, a, b, params({ m: 2, n: 2, k: 2, accumulate: true }));
    expectClose(
      await download(be, o16),
      exact.map((v) => v + 1),
      2e-3,
    );
    be.destroy();
  });

  it('handles k = 0 and empty shapes', async () => {
    const be = backend();
    const out = upload(be, [5, 5, 5, 5]);
    const empty = be.alloc('float32', 0);
    be.matmul(out, empty, empty, params({ m: 2, n: 2, k: 0 }));
    expect(await download(be, out)).toEqual([0, 0, 0, 0]);
    be.fill(out, 5);
    be.matmul(out, empty, empty, params({ m: 2, n: 2, k: 0, accumulate: true }));
    expect(await download(be, out)).toEqual([5, 5, 5, 5]);
    be.matmul(out, empty, upload(be, [1, 2, 3, 4, 5, 6]), params({ m: 0, n: 2, k: 3 })); // nothing to do
    expect(await download(be, out)).toEqual([5, 5, 5, 5]);
    be.destroy();
  });

  it('rejects buffers that are too small, int32 operands and aliasing', () => {
    const be = backend();
    const a = be.alloc('float32', 8);
    const b = be.alloc('float32', 12);
    const out = be.alloc('float32', 6);
    expect(() => be.matmul(out, a, b, params({ batch: 2, strideA: 8, strideB: 0, strideOut: 6 }))).toThrow(
      /matmul: a has 8 elements but the parameters need at least 16/,
    );
    expect(() => be.matmul(out, a, b, params({ batch: 2, strideA: 0, strideB: 0, strideOut: 6 }))).toThrow(
      /matmul: out has 6 elements but the parameters need at least 12/,
    );
    expect(() => be.matmul(out, be.alloc('int32', 8), b, params({}))).toThrow(/matmul: a has dtype int32 but must be a float dtype/);
    expect(() => be.matmul(a, a, b, params({}))).toThrow(/out must not be the same buffer/);
    expect(() => be.matmul(out, a, b, params({ m: -1 }))).toThrow(/matmul: m must be a non-negative integer, got -1/);
    be.destroy();
  });
});

describe('matmul: large 16-bit operands decoded by panels', () => {
  const defaults = { ...matmulBlocking };
  afterEach(() => Object.assign(matmulBlocking, defaults));

  /** The values a dtype stores for `values`. */
  const rounded = (values: number[], dtype: DType) => Array.from(decode(encode(values, dtype), dtype));

  it.each(['wasm', 'auto'] as const)(
    'equals decoding first for every transpose, dtype pair, batch stride, alpha and accumulate (gemm %s)',
    async (gemm) => {
      const be = createCpuBackend({ gemm });
      const [m, n, k, batch] = [37, 45, 70, 2];
      let seed = 10;
      for (const [da, db] of [
        ['bfloat16', 'float32'],
        ['float32', 'bfloat16'],
        ['float16', 'bfloat16'],
        ['bfloat16', 'bfloat16'],
      ] as const)
        for (const transA of [false, true])
          for (const transB of [false, true])
            for (const [strideA, strideB, strideOut] of [
              [m * k, k * n, m * n],
              [0, k * n, m * n + 3],
              [m * k, 0, 0],
            ]) {
              const accumulate = seed % 2 === 0;
              const p = params({ batch, m, n, k, transA, transB, strideA, strideB, strideOut, alpha: 0.75, accumulate });
              const av = rounded(randomValues((batch - 1) * strideA + m * k, seed++), da);
              const bv = rounded(randomValues((batch - 1) * strideB + k * n, seed++), db);
              const ov = randomValues((batch - 1) * strideOut + m * n, seed++);
              // Panels of 16 rows (of whichever dimension is blocked): several per product, a short last one.
              Object.assign(matmulBlocking, { decodeWholeUpTo: 0, panelElements: 16 });
              const out = upload(be, ov);
              be.matmul(out, upload(be, av, da), upload(be, bv, db), p);
              const got = await download(be, out);
              Object.assign(matmulBlocking, defaults);
              const whole = upload(be, ov);
              be.matmul(whole, upload(be, av, da), upload(be, bv, db), p);
              expectClose(got, await download(be, whole), 1e-5);
              expectClose(got, naive(av, bv, p, ov), 1e-4);
            }
      be.destroy();
    },
  );

  it('a weight above the whole-decode limit never reaches the engine whole', async () => {
    const be = backend();
    const calls: { m: number; n: number; k: number; bLength: number }[] = [];
    const engine = be.sgemm;
    const spy: SgemmEngine = {
      description: engine.description,
      destroy: () => engine.destroy(),
      sgemm(args: SgemmArgs) {
        calls.push({ m: args.m, n: args.n, k: args.k, bLength: args.b.length });
        engine.sgemm(args);
      },
    };
    Object.defineProperty(be, 'sgemm', { value: spy });
    const [m, n, k] = [8, 300, 4096]; // the weight [n, k]: 1.2M elements, above the 2^20 limit
    const x = randomValues(m * k, 1);
    const w = rounded(randomValues(n * k, 2, 0.1), 'bfloat16');
    const p = params({ m, n, k, transB: true });
    const out = be.alloc('float32', m * n);
    be.matmul(out, upload(be, x), upload(be, w, 'bfloat16'), p);
    expect(calls.map((c) => c.n)).toEqual([256, 44]); // panels of 256 rows of the weight (2^20 elements)
    for (const c of calls) expect(c.bLength).toBeLessThan(n * k);
    expect(calls.reduce((s, c) => s + c.n, 0)).toBe(n);
    const want = be.alloc('float32', m * n);
    be.matmul(want, upload(be, x), upload(be, w), p); // the same values in float32
    expectClose(await download(be, out), await download(be, want), 1e-6);
    be.destroy();
  });
});
