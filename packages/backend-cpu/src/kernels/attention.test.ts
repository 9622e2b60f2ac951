import type { AttentionParams } from '@peft/core';
import { describe, expect, it } from 'vitest';
import type { CpuBackend } from '../backend.js';
import { backend, dot, download, expectClose, expectGradClose, numericGrad, randomValues, upload } from '../test-helpers.js';

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
