import { type AttentionParams, type DType, decode, encode } from '@peft/core';
import { assertClose, reference } from '@peft/core/testing';
import { describe, expect, it } from 'vitest';
import { type CpuBackend, createCpuBackend } from '../backend.js';
import { backend, dot, download, expectClose, expectGradClose, numericGrad, randomValues, upload } from '../test-helpers.js';
import { createAttentionRows, rowStride } from './attention-rows.js';
import { ATTENTION_ROWS_WASM_BASE64 } from './attention-rows.wasm.js';

/** Naive attention with an explicit visibility matrix, in double precision. */
function naive(q: number[], k: number[], v: number[], mask: number[] | null, p: AttentionParams): { out: number[]; lse: number[] } {
  const { batch, seqQ, seqK, heads, kvHeads, headDim: D, scale, causal } = p;
  const out = new Array<number>(batch * seqQ * heads * D).fill(0);
  const lse = new Array<number>(batch * heads * seqQ).fill(0);
  for (let b = 0; b < batch; b++) {
    // visible[i][j]
    const visible = Array.from({ length: seqQ }, (_, i) =>
      Array.from({ length: seqK }, (_, j) => (mask === null || mask[b * seqK + j] === 1) && (!causal || j <= i + seqK - seqQ)),
    );
    for (let h = 0; h < heads; h++) {
      const kh = Math.floor((h * kvHeads) / heads);
      for (let i = 0; i < seqQ; i++) {
        const s: number[] = [];
        for (let j = 0; j < seqK; j++) {
          let d = 0;
          for (let t = 0; t < D; t++) d += q[((b * seqQ + i) * heads + h) * D + t] * k[((b * seqK + j) * kvHeads + kh) * D + t];
          s.push(visible[i][j] ? scale * d : Number.NEGATIVE_INFINITY);
        }
        const z = s.reduce((acc, x) => acc + Math.exp(x), 0);
        lse[(b * heads + h) * seqQ + i] = Math.log(z);
        if (z === 0) continue;
        for (let j = 0; j < seqK; j++) {
          const pj = Math.exp(s[j]) / z;
          for (let t = 0; t < D; t++) out[((b * seqQ + i) * heads + h) * D + t] += pj * v[((b * seqK + j) * kvHeads + kh) * D + t];
        }
      }
    }
  }
  return { out, lse };
}

function run(be: CpuBackend, q: number[], k: number[], v: number[], mask: number[] | null, p: AttentionParams) {
  const out = be.alloc('float32', q.length);
  const lse = be.alloc('float32', p.batch * p.heads * p.seqQ);
  const bufs = { q: upload(be, q), k: upload(be, k), v: upload(be, v), mask: mask && upload(be, mask, 'int32') };
  be.attention(out, lse, bufs.q, bufs.k, bufs.v, bufs.mask, p);
  return { out, lse, ...bufs };
}

const base: AttentionParams = { batch: 2, seqQ: 3, seqK: 5, heads: 4, kvHeads: 2, headDim: 3, scale: 0.7, causal: false };

function inputs(p: AttentionParams, seed: number) {
  return {
    q: randomValues(p.batch * p.seqQ * p.heads * p.headDim, seed, 1.5),
    k: randomValues(p.batch * p.seqK * p.kvHeads * p.headDim, seed + 1, 1.5),
    v: randomValues(p.batch * p.seqK * p.kvHeads * p.headDim, seed + 2, 1.5),
  };
}

describe('attention', () => {
  it('matches a hand-computed single query over two keys', async () => {
    const be = backend();
    const p: AttentionParams = { batch: 1, seqQ: 1, seqK: 2, heads: 1, kvHeads: 1, headDim: 1, scale: 1, causal: false };
    // scores [1·1, 1·2] = [1, 2]; softmax = [1, e] / (1 + e)
    const r = run(be, [1], [1, 2], [10, 20], null, p);
    const e = Math.E;
    expectClose(await download(be, r.out), [(10 + 20 * e) / (1 + e)], 1e-6);
    expectClose(await download(be, r.lse), [Math.log(e + e * e)], 1e-6);
    be.destroy();
  });

  const cases: [string, AttentionParams, number[] | null][] = [
    ['GQA, no mask', base, null],
    ['GQA, causal with seqK > seqQ (cache offset 2)', { ...base, causal: true }, null],
    ['padding mask, one batch fully padded', { ...base, causal: true }, [1, 1, 0, 1, 1, /**/ 0, 0, 0, 0, 0]],
    ['causal with seqQ > seqK: first queries see nothing', { ...base, seqQ: 5, seqK: 3, kvHeads: 4, causal: true }, [0, 1, 1, 1, 1, 1]],
  ];
  for (const [name, p, mask] of cases) {
    it(`matches a naive double loop: ${name}`, async () => {
      const be = backend();
      const { q, k, v } = inputs(p, 40);
      const r = run(be, q, k, v, mask, p);
      const want = naive(q, k, v, mask, p);
      expectClose(await download(be, r.out), want.out, 1e-5);
      expectClose(await download(be, r.lse), want.lse, 1e-5);
      be.destroy();
    });
  }

  it('gives rows that see no key out = 0 and lse = −Infinity', async () => {
    const be = backend();
    const p = { ...base, seqQ: 5, seqK: 3, causal: true };
    const { q, k, v } = inputs(p, 50);
    const r = run(be, q, k, v, [1, 1, 1, 0, 1, 1], p);
    const lse = await download(be, r.lse);
    const out = await download(be, r.out);
    // batch 0: queries 0 and 1 see j ≤ i − 2 < 0; batch 1: query 2 sees only padding key 0
    for (let h = 0; h < p.heads; h++) {
      expect(lse.slice(h * 5, h * 5 + 2)).toEqual([Number.NEGATIVE_INFINITY, Number.NEGATIVE_INFINITY]);
      expect(lse[(p.heads + h) * 5 + 2]).toBe(Number.NEGATIVE_INFINITY);
      expect(Number.isFinite(lse[(p.heads + h) * 5 + 3])).toBe(true);
    }
    const D = p.headDim;
    const row = (b: number, i: number, h: number) => out.slice(((b * 5 + i) * p.heads + h) * D, ((b * 5 + i) * p.heads + h + 1) * D);
    expect(row(0, 0, 1)).toEqual([0, 0, 0]);
    expect(row(1, 2, 3)).toEqual([0, 0, 0]);
    be.destroy();
  });

  for (const [name, p, mask] of cases) {
    it(`backward matches finite differences: ${name}`, async () => {
      const be = backend();
      const { q, k, v } = inputs(p, 60);
      const g = randomValues(q.length, 63);
      const r = run(be, q, k, v, mask, p);
      const dq = be.alloc('float32', q.length);
      const dk = upload(
        be,
        k.map(() => 9),
      ); // stale values must be overwritten
      const dv = be.alloc('float32', v.length);
      be.attentionBackward(dq, dk, dv, upload(be, g), r.q, r.k, r.v, r.out, r.lse, r.mask, p);
      const loss = async (qq: number[], kk: number[], vv: number[]) => {
        const rr = run(be, qq, kk, vv, mask, p);
        const o = await download(be, rr.out);
        for (const b of [rr.out, rr.lse, rr.q, rr.k, rr.v]) be.free(b);
        if (rr.mask) be.free(rr.mask);
        return dot(g, o);
      };
      const h = 1e-2;
      expectGradClose(await download(be, dq), await numericGrad(q, h, (x) => loss(x, k, v)));
      expectGradClose(await download(be, dk), await numericGrad(k, h, (x) => loss(q, x, v)));
      expectGradClose(await download(be, dv), await numericGrad(v, h, (x) => loss(q, k, x)));
      be.destroy();
    });
  }

  it('reads bfloat16 q/k/v and rounds the output', async () => {
    const be = backend();
    const p = { ...base, causal: true };
    const { q, k, v } = inputs(p, 70);
    const out = be.alloc('bfloat16', q.length);
    const lse = be.alloc('float32', p.batch * p.heads * p.seqQ);
    be.attention(out, lse, upload(be, q, 'bfloat16'), upload(be, k, 'bfloat16'), upload(be, v, 'bfloat16'), null, p);
    const want = naive(q, k, v, null, p);
    expectClose(await download(be, out), want.out, 3e-2);
    be.destroy();
  });

  it('rejects heads that are not a multiple of kvHeads and short buffers', () => {
    const be = backend();
    const { q, k, v } = inputs(base, 80);
    expect(() => run(be, q, k, v, null, { ...base, kvHeads: 3 })).toThrow(/attention: heads 4 must be a multiple of kvHeads 3/);
    expect(() => run(be, q, k.slice(1), v, null, base)).toThrow(/attention: k has 59 elements but the parameters need at least 60/);
    expect(() => run(be, q, k, v, [1, 1], base)).toThrow(/attention: mask has 2 elements but the parameters need at least 10/);
    be.destroy();
  });
});

/** Values as a `dtype` buffer stores them (so the oracle sees what the kernel reads). */
function rounded(values: number[], dtype: DType): number[] {
  return Array.from(decode(encode(values, dtype), dtype));
}

/** Padding masks: 1 = real key. */
const pad = (seqK: number, isPad: (j: number) => boolean) => Array.from({ length: seqK }, (_, j) => (isPad(j) ? 0 : 1));

describe('attention in query blocks against the float64 oracle', () => {
  const P = (q: Partial<AttentionParams> & Pick<AttentionParams, 'seqQ' | 'seqK' | 'heads' | 'kvHeads' | 'headDim'>): AttentionParams => ({
    batch: 1,
    causal: true,
    scale: 1 / Math.sqrt(q.headDim),
    ...q,
  });
  const cases: [string, AttentionParams, (p: AttentionParams) => number[] | null][] = [
    ['GQA 3:1, no mask, not causal', P({ batch: 2, seqQ: 37, seqK: 37, heads: 6, kvHeads: 2, headDim: 16, causal: false }), () => null],
    ['causal over a KV cache (seqK > seqQ), GQA 2:1', P({ batch: 2, seqQ: 9, seqK: 45, heads: 4, kvHeads: 2, headDim: 8 }), () => null],
    [
      'left, right and inner padding, and a sequence of padding only',
      P({ batch: 3, seqQ: 20, seqK: 20, heads: 2, kvHeads: 1, headDim: 12 }),
      (p) => [...pad(p.seqK, (j) => j < 5 || j === 9 || j === 10), ...pad(p.seqK, (j) => j >= 13), ...pad(p.seqK, () => true)],
    ],
    [
      'several query blocks, keys not a multiple of 4, random padding',
      P({ seqQ: 101, seqK: 133, heads: 2, kvHeads: 1, headDim: 24 }),
      (p) => randomValues(p.seqK, 7).map((u) => (u < -0.8 ? 0 : 1)),
    ],
    [
      'several query blocks, not causal, random padding',
      P({ batch: 2, seqQ: 70, seqK: 66, heads: 2, kvHeads: 2, headDim: 8, causal: false }),
      (p) => randomValues(2 * p.seqK, 8).map((u) => (u < -0.7 ? 0 : 1)),
    ],
    ['causal seqQ > seqK: the first blocks see no key', P({ seqQ: 75, seqK: 10, heads: 1, kvHeads: 1, headDim: 4 }), () => null],
    ['large scores (scale 1)', P({ seqQ: 40, seqK: 40, heads: 2, kvHeads: 2, headDim: 64, scale: 1 }), () => null],
    // Query blocks are 32 rows: one row short of, at and past a block boundary, and several blocks and a row.
    ['causal, 31 queries and keys (one block)', P({ seqQ: 31, seqK: 31, heads: 2, kvHeads: 1, headDim: 8 }), () => null],
    ['causal, 32 queries and keys (one full block)', P({ seqQ: 32, seqK: 32, heads: 2, kvHeads: 1, headDim: 8 }), () => null],
    ['causal, 33 queries and keys (a block of one row)', P({ seqQ: 33, seqK: 33, heads: 2, kvHeads: 1, headDim: 8 }), () => null],
    ['causal, 129 queries and keys, GQA 3:1', P({ seqQ: 129, seqK: 129, heads: 3, kvHeads: 1, headDim: 8 }), () => null],
    [
      'causal over a KV cache across blocks (70 queries, 150 keys), GQA 2:1',
      P({ batch: 2, seqQ: 70, seqK: 150, heads: 4, kvHeads: 2, headDim: 8 }),
      () => null,
    ],
    [
      'causal, padding on both sides and inside, across blocks',
      P({ batch: 2, seqQ: 130, seqK: 130, heads: 2, kvHeads: 2, headDim: 8 }),
      (p) => [...pad(p.seqK, (j) => j < 9 || j >= 113 || j === 64 || j === 70), ...pad(p.seqK, (j) => j >= 66)],
    ],
    [
      'not causal, 65 queries over 40 keys padded on both sides',
      P({ batch: 2, seqQ: 65, seqK: 40, heads: 2, kvHeads: 1, headDim: 8, causal: false }),
      (p) => [...pad(p.seqK, (j) => j < 3 || j >= 37), ...pad(p.seqK, (j) => j >= 1)],
    ],
  ];

  function inputs(p: AttentionParams, dtype: DType, seed: number) {
    const nq = p.batch * p.seqQ * p.heads * p.headDim;
    const nk = p.batch * p.seqK * p.kvHeads * p.headDim;
    return {
      q: rounded(randomValues(nq, seed, 2), dtype),
      k: rounded(randomValues(nk, seed + 1, 2), dtype),
      v: rounded(randomValues(nk, seed + 2, 2), dtype),
      g: rounded(randomValues(nq, seed + 3, 1), dtype),
    };
  }

  for (const [name, p, maskOf] of cases) {
    for (const dtype of ['float32', 'bfloat16', 'float16'] as const) {
      it(`${dtype}: ${name}`, async () => {
        const be = backend();
        const mask = maskOf(p);
        const { q, k, v, g } = inputs(p, dtype, 100);
        const want = reference.attention(q, k, v, mask, p);
        const wantGrad = reference.attentionBackward(g, q, k, v, mask, p);
        const bufs = {
          q: upload(be, q, dtype),
          k: upload(be, k, dtype),
          v: upload(be, v, dtype),
          g: upload(be, g, dtype),
          mask: mask && upload(be, mask, 'int32'),
        };
        const out = be.alloc(dtype, q.length);
        const lse = be.alloc('float32', p.batch * p.heads * p.seqQ);
        be.attention(out, lse, bufs.q, bufs.k, bufs.v, bufs.mask, p);
        // float32: float32 scores and products; bfloat16 / float16: one rounding of the output (2⁻⁸ or less).
        const rtol = dtype === 'float32' ? 2e-5 : 2 ** -8;
        const atol = dtype === 'float32' ? 2e-5 : 4e-3;
        const qShape = [p.batch, p.seqQ, p.heads, p.headDim];
        const kShape = [p.batch, p.seqK, p.kvHeads, p.headDim];
        assertClose(await download(be, out), want.out, { what: 'out', shape: qShape, atol, rtol });
        assertClose(await download(be, lse), want.lse, { what: 'lse', shape: [p.batch, p.heads, p.seqQ], atol: 2e-5, rtol: 2e-5 });

        const dq = be.alloc(dtype, q.length);
        const dk = upload(be, new Array<number>(k.length).fill(9), dtype); // stale values must be overwritten
        const dv = upload(be, new Array<number>(v.length).fill(9), dtype);
        be.attentionBackward(dq, dk, dv, bufs.g, bufs.q, bufs.k, bufs.v, out, lse, bufs.mask, p);
        const gradTol = { atol: dtype === 'float32' ? 1e-4 : 8e-3, rtol: dtype === 'float32' ? 1e-4 : 2 ** -7 };
        const got = { out: await download(be, out), dq: await download(be, dq), dk: await download(be, dk), dv: await download(be, dv) };
        assertClose(got.dq, wantGrad.dq, { what: 'dq', shape: qShape, ...gradTol });
        assertClose(got.dk, wantGrad.dk, { what: 'dk', shape: kShape, ...gradTol });
        assertClose(got.dv, wantGrad.dv, { what: 'dv', shape: kShape, ...gradTol });

        // Exactly 0: the output and dq of rows that see no key, dk and dv of padding keys.
        const D = p.headDim;
        for (let b = 0; b < p.batch; b++) {
          for (let h = 0; h < p.heads; h++) {
            for (let i = 0; i < p.seqQ; i++) {
              if (want.lse[(b * p.heads + h) * p.seqQ + i] !== Number.NEGATIVE_INFINITY) continue;
              const at = ((b * p.seqQ + i) * p.heads + h) * D;
              expect(got.out.slice(at, at + D), `out row b${b} h${h} i${i}`).toEqual(new Array(D).fill(0));
              expect(got.dq.slice(at, at + D), `dq row b${b} h${h} i${i}`).toEqual(new Array(D).fill(0));
            }
          }
          for (let j = 0; j < p.seqK; j++) {
            if (mask === null || mask[b * p.seqK + j] !== 0) continue;
            const at = (b * p.seqK + j) * p.kvHeads * D;
            expect(got.dk.slice(at, at + p.kvHeads * D), `dk of padding key b${b} j${j}`).toEqual(new Array(p.kvHeads * D).fill(0));
            expect(got.dv.slice(at, at + p.kvHeads * D), `dv of padding key b${b} j${j}`).toEqual(new Array(p.kvHeads * D).fill(0));
          }
        }
        be.destroy();
      });
    }
  }
});

describe('attention on each GEMM engine, at 1 and 2 threads', () => {
  // The GPT-NeoX training shape's sequence and head sizes. (OpenBLAS computes a product it splits
  // across threads, those of more than 2¹⁸ multiply-adds, to other bits than one thread does;
  // these blocks' products stay at most 2¹⁸.)
  const p: AttentionParams = { batch: 2, seqQ: 128, seqK: 128, heads: 4, kvHeads: 2, headDim: 64, scale: 0.125, causal: true };
  const mask = [...pad(p.seqK, (j) => j < 5 || j >= 120 || j === 77), ...pad(p.seqK, () => false)];
  const nq = p.batch * p.seqQ * p.heads * p.headDim;
  const nk = p.batch * p.seqK * p.kvHeads * p.headDim;
  const q = randomValues(nq, 300, 2);
  const k = randomValues(nk, 301, 2);
  const v = randomValues(nk, 302, 2);
  const g = randomValues(nq, 303, 1);
  const want = reference.attention(q, k, v, mask, p);
  const wantGrad = reference.attentionBackward(g, q, k, v, mask, p);

  async function run(gemm: 'blas' | 'wasm' | 'js', threads: number) {
    const be = createCpuBackend({ gemm, threads, workers: false });
    const out = be.alloc('float32', nq);
    const lse = be.alloc('float32', p.batch * p.heads * p.seqQ);
    const [qb, kb, vb, gb, mb] = [upload(be, q), upload(be, k), upload(be, v), upload(be, g), upload(be, mask, 'int32')];
    be.attention(out, lse, qb, kb, vb, mb, p);
    const [dq, dk, dv] = [be.alloc('float32', nq), be.alloc('float32', nk), be.alloc('float32', nk)];
    be.attentionBackward(dq, dk, dv, gb, qb, kb, vb, out, lse, mb, p);
    const got = {
      out: await download(be, out),
      lse: await download(be, lse),
      dq: await download(be, dq),
      dk: await download(be, dk),
      dv: await download(be, dv),
    };
    be.destroy();
    return got;
  }

  const engines = (['blas', 'wasm', 'js'] as const).filter((gemm) => {
    try {
      createCpuBackend({ gemm, threads: 1, workers: false }).destroy();
      return true;
    } catch {
      return false;
    }
  });
  for (const gemm of engines) {
    it(`${gemm}: matches the oracle, with the same bits at 1 and 2 threads`, async () => {
      const one = await run(gemm, 1);
      const two = await run(gemm, 2);
      const tol = { atol: 1e-4, rtol: 1e-4 };
      assertClose(one.out, want.out, { what: `${gemm} out`, ...tol });
      assertClose(one.lse, want.lse, { what: `${gemm} lse`, ...tol });
      assertClose(one.dq, wantGrad.dq, { what: `${gemm} dq`, ...tol });
      assertClose(one.dk, wantGrad.dk, { what: `${gemm} dk`, ...tol });
      assertClose(one.dv, wantGrad.dv, { what: `${gemm} dv`, ...tol });
      for (const name of ['out', 'lse', 'dq', 'dk', 'dv'] as const) {
        expect(Float32Array.from(two[name]), `${gemm} ${name}: 2 threads vs 1`).toEqual(Float32Array.from(one[name]));
      }
    });
  }
});

describe('attention row kernels', () => {
  const kinds = (['wasm', 'js'] as const).filter((kind) => kind === 'js' || createAttentionRows().kind === 'wasm');

  /**
   * A block of rows ld apart with rows that see nothing, all-padding views, short and odd lengths;
   * scores up to ±40. What lies past n in a row (and in dP past what a row sees, and in bias past
   * n) is NaN: the kernels must neither read it into a result nor leave it behind.
   */
  function block(n: number, ld: number, rows: number, seed: number) {
    const s = randomValues(rows * n, seed, 40).map(Math.fround);
    const dP = randomValues(rows * n, seed + 1, 3).map(Math.fround);
    const bias = randomValues(n, seed + 2).map((u) => (u < -0.5 ? Number.NEGATIVE_INFINITY : 0));
    const strided = (values: number[]) => {
      const out = new Array<number>(rows * ld).fill(Number.NaN);
      for (let r = 0; r < rows; r++) for (let c = 0; c < n; c++) out[r * ld + c] = values[r * n + c]!;
      return out;
    };
    return { s, dP, bias, sLd: strided(s), dPLd: strided(dP), biasLd: [...bias, ...new Array(ld - n).fill(Number.NaN)] };
  }

  const shapes: [n: number, rows: number, seen0: number, step: number, biased: boolean, extra: number][] = [
    [1, 3, 0, 1, false, 0],
    [3, 5, -1, 1, true, 0],
    [13, 9, 2, 1, true, 0],
    [13, 4, 13, 0, false, 4],
    [64, 7, 60, 1, true, 0],
    [66, 11, 58, 1, false, 8],
    [130, 6, 130, 0, true, 0],
  ];

  for (const kind of kinds) {
    for (const [n, rows, seen0, step, biased, extra] of shapes) {
      const ld = rowStride(n) + extra;
      it(`${kind}: softmax and grad of ${rows} rows of ${n}, ${ld} apart (seen from ${seen0}, step ${step}${biased ? ', padding' : ''}) match float64`, () => {
        const rk = createAttentionRows(kind);
        const { s, dP, bias, sLd, dPLd, biasLd } = block(n, ld, rows, 11 * n + rows);
        rk.reserve(rows * ld, ld, rows);
        rk.s.set(sLd);
        rk.bias.set(biasLd);
        rk.softmax(rows, n, ld, seen0, step, biased);
        const lse: number[] = [];
        for (let r = 0; r < rows; r++) {
          const seen = Math.min(Math.max(seen0 + r * step, 0), n);
          const x = s.slice(r * n, r * n + seen).map((v, c) => v + (biased ? bias[c] : 0));
          const max = Math.max(Number.NEGATIVE_INFINITY, ...x);
          const e = x.map((v) => (max === Number.NEGATIVE_INFINITY ? 0 : Math.exp(v - max)));
          const sum = e.reduce((a, b) => a + b, 0);
          lse.push(max + Math.log(sum));
          const what = `${kind} softmax row ${r}`;
          expect(rk.max[r], what).toBe(max === Number.NEGATIVE_INFINITY ? max : Math.fround(max));
          assertClose(rk.sum[r], sum, { what: `${what} sum`, atol: 0, rtol: 1e-6 });
          // Normalized probabilities (at most 1): x − max in float32 costs tiny ones a few 1e-6 of their size.
          const want = [...e.map((v) => (sum === 0 ? 0 : v / sum)), ...new Array(ld - seen).fill(0)];
          assertClose(Array.from(rk.s.subarray(r * ld, (r + 1) * ld)), want, { what, atol: 1e-7, rtol: 2e-6 });
          // Unseen and padding entries are exactly 0, up to ld.
          for (let c = 0; c < ld; c++) if (c >= seen || (bias[c] === Number.NEGATIVE_INFINITY && biased)) expect(rk.s[r * ld + c]).toBe(0);
        }

        rk.s.set(sLd);
        rk.ds.set(dPLd);
        rk.lse.set(lse);
        rk.grad(rows, n, ld, seen0, step, biased);
        for (let r = 0; r < rows; r++) {
          const seen = Math.min(Math.max(seen0 + r * step, 0), n);
          const p = new Array<number>(ld).fill(0);
          if (lse[r] !== Number.NEGATIVE_INFINITY) {
            for (let c = 0; c < seen; c++) p[c] = Math.exp(s[r * n + c] + (biased ? bias[c] : 0) - Math.fround(lse[r]));
          }
          const di = p.reduce((a, pc, c) => a + (c < seen ? pc * dP[r * n + c] : 0), 0);
          const dS = p.map((pc, c) => (c < seen ? pc * (dP[r * n + c] - di) : 0));
          const what = `${kind} grad row ${r}`;
          assertClose(Array.from(rk.s.subarray(r * ld, (r + 1) * ld)), p, { what: `${what} P`, atol: 1e-7, rtol: 1e-5 });
          assertClose(Array.from(rk.ds.subarray(r * ld, (r + 1) * ld)), dS, { what: `${what} dS`, atol: 1e-6, rtol: 1e-5 });
          for (let c = seen; c < ld; c++) expect([rk.s[r * ld + c], rk.ds[r * ld + c]], `${what} entry ${c}`).toEqual([0, 0]);
        }
      });
    }
  }

  it('wasm and js agree to float32 rounding on the same block', () => {
    if (kinds.length < 2) return;
    const [w, j] = [createAttentionRows('wasm'), createAttentionRows('js')];
    const { sLd, biasLd } = block(77, 80, 40, 5);
    for (const rk of [w, j]) {
      rk.reserve(40 * 80, 80, 40);
      rk.s.set(sLd);
      rk.bias.set(biasLd);
      rk.softmax(40, 77, 80, -3, 2, true);
    }
    assertClose(Array.from(w.s.subarray(0, 40 * 80)), Array.from(j.s.subarray(0, 40 * 80)), { what: 'wasm vs js', atol: 1e-7, rtol: 2e-6 });
  });

  it('a row whose seen scores are all NaN gives NaN, not a row that sees nothing', () => {
    for (const kind of kinds) {
      const rk = createAttentionRows(kind);
      rk.reserve(2 * 8, 8, 2);
      rk.s.set([Number.NaN, Number.NaN, 1, 1, 1, 1, 1, 1, /**/ 0, 1, 2, 3, 4, 5, 6, 7]);
      rk.softmax(2, 8, 8, 2, 0, false);
      expect([Number.isNaN(rk.max[0]), Number.isNaN(rk.sum[0]), Number.isNaN(rk.s[0])], kind).toEqual([true, true, true]);
      expect(rk.max[1], kind).toBe(1);
    }
  });
});

describe('embedded attention row module', () => {
  it('stays under 4 KiB, the most browsers compile synchronously on the main thread', () => {
    expect(atob(ATTENTION_ROWS_WASM_BASE64).length).toBeLessThan(4096);
  });
});
