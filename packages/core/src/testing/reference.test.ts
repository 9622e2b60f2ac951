import { describe, expect, it } from 'vitest';
import type { AttentionParams, MatmulParams, UnaryOp } from '../backend.js';
import { philoxNormal, philoxUniform } from '../random/philox.js';
import { assertClose } from './assert.js';
import { finiteDifference } from './gradcheck.js';
import * as ref from './reference.js';
import { TestRng } from './rng.js';

const close = (actual: ArrayLike<number> | number, expected: ArrayLike<number> | number, what = 'value', atol = 1e-12) =>
  assertClose(actual, expected, { atol, rtol: 1e-12, what });

const mm = (q: Partial<MatmulParams> & Pick<MatmulParams, 'm' | 'n' | 'k'>): MatmulParams => ({
  batch: 1,
  transA: false,
  transB: false,
  strideA: q.m * q.k,
  strideB: q.k * q.n,
  strideOut: q.m * q.n,
  alpha: 1,
  accumulate: false,
  ...q,
});

describe('reference: data movement and elementwise', () => {
  it('lists view offsets in row-major order', () => {
    expect(ref.viewOffsets({ shape: [3, 2], strides: [1, 3], offset: 0 })).toEqual([0, 3, 1, 4, 2, 5]);
    expect(ref.viewOffsets({ shape: [2, 2], strides: [0, 1], offset: 4 })).toEqual([4, 5, 4, 5]);
    expect(ref.viewOffsets(ref.contiguousView([2, 3], 1))).toEqual([1, 2, 3, 4, 5, 6]);
  });

  it('copies through a transposing view and adds back into one', () => {
    const x = [1, 2, 3, 4, 5, 6]; // [2,3]
    const view = { shape: [3, 2], strides: [1, 3], offset: 0 };
    close(ref.copy(x, view), [1, 4, 2, 5, 3, 6]);
    close(ref.addInto([10, 10, 10, 10, 10, 10], [1, 4, 2, 5, 3, 6], view), [11, 12, 13, 14, 15, 16]);
    close(ref.addInto([0, 0, 0, 0], [1, 2], { shape: [2], strides: [2], offset: 1 }), [0, 1, 0, 2]);
  });

  it('computes the unary ops at hand-checked points', () => {
    const at = (op: UnaryOp, x: number) => ref.unaryScalar(op, x);
    close(at('neg', 2), -2);
    close(at('exp', 1), Math.E);
    close(at('log', Math.E), 1);
    close(at('sqrt', 9), 3);
    close(at('rsqrt', 4), 0.5);
    close(at('square', -3), 9);
    close(at('abs', -3), 3);
    close(at('silu', 1), 0.7310585786300049);
    close(at('sigmoid', 0), 0.5);
    close(at('tanh', 1), 0.7615941559557649);
    close(at('relu', -1), 0);
    close(at('relu', 2), 2);
  });

  it('affine, binary with broadcast views, reduce and argmax', () => {
    close(ref.affine([1, -2], 3, 0.5), [3.5, -5.5]);
    const row = { shape: [2, 3], strides: [0, 1], offset: 0 };
    close(ref.binary('sub', [1, 2, 3, 4, 5, 6], ref.contiguousView([2, 3]), [1, 1, 2], row), [0, 1, 1, 3, 4, 4]);
    close(ref.binary('div', [1, 2], ref.contiguousView([2]), [4], { shape: [2], strides: [0], offset: 0 }), [0.25, 0.5]);
    close(ref.binary('max', [1, 5], ref.contiguousView([2]), [3, 3], ref.contiguousView([2])), [3, 5]);
    close(ref.binary('min', [1, 5], ref.contiguousView([2]), [3, 3], ref.contiguousView([2])), [1, 3]);
    const x = [1, 2, 3, 4, 5, 6];
    close(ref.reduce('sum', x, 1, 2, 3), [5, 7, 9]);
    close(ref.reduce('sum', x, 2, 3, 1), [6, 15]);
    close(ref.reduce('max', [1, 9, 3, 4, 5, 6], 1, 2, 3), [4, 9, 6]);
    expect([...ref.argmax([1, 3, 3, 0, -1, -2], 2, 3)]).toEqual([1, 0]);
  });
});

describe('reference: matmul', () => {
  const a = [1, 2, 3, 4, 5, 6]; // [2,3]
  const b = [7, 8, 9, 10, 11, 12]; // [3,2]
  it('multiplies 2×3 by 3×2', () => {
    close(ref.matmul(a, b, mm({ m: 2, n: 2, k: 3 })), [58, 64, 139, 154]);
  });
  it('reads transposed operands', () => {
    const aT = [1, 4, 2, 5, 3, 6]; // a stored [3,2]
    const bT = [7, 9, 11, 8, 10, 12]; // b stored [2,3]
    close(ref.matmul(aT, bT, mm({ m: 2, n: 2, k: 3, transA: true, transB: true })), [58, 64, 139, 154]);
  });
  it('scales by alpha and accumulates', () => {
    close(ref.matmul(a, b, mm({ m: 2, n: 2, k: 3, alpha: 0.5, accumulate: true }), [1, 1, 1, 1]), [30, 33, 70.5, 78]);
  });
  it('broadcasts b over a batch (strideB 0)', () => {
    const a2 = [...a, ...a.map((v) => -v)];
    close(ref.matmul(a2, b, mm({ batch: 2, m: 2, n: 2, k: 3, strideB: 0 })), [58, 64, 139, 154, -58, -64, -139, -154]);
  });
});

describe('reference: embedding and norms', () => {
  it('gathers rows and scatter-adds repeated ids', () => {
    const w = [1, 2, 3, 4, 5, 6]; // [3,2]
    close(ref.embedding(w, [2, 0, 2], 3, 2), [5, 6, 1, 2, 5, 6]);
    close(ref.embeddingBackward([1, 1, 2, 2, 3, 3], [2, 0, 2], 3, 2, 3), [2, 2, 0, 0, 4, 4]);
  });

  it('layer-normalises the row [1, 2, 3, 4]', () => {
    // mean 2.5, biased variance 1.25
    const r = ref.layerNorm([1, 2, 3, 4], [1, 1, 2, 2], [0, 0, 0, 1], { rows: 1, dim: 4, eps: 0 });
    const s = 1 / Math.sqrt(1.25);
    close(r.mean, [2.5]);
    close(r.rstd, [s]);
    close(r.out, [-1.5 * s, -0.5 * s, 2 * 0.5 * s, 2 * 1.5 * s + 1]);
  });

  it('rms-normalises the row [3, 4]', () => {
    const r = ref.rmsNorm([3, 4], [1, 2], { rows: 1, dim: 2, eps: 0 });
    close(r.rstd, [1 / Math.sqrt(12.5)]);
    close(r.out, [3 / Math.sqrt(12.5), 8 / Math.sqrt(12.5)]);
  });

  it('layer norm backward equals the closed form rstd·(g − mean(g) − x̂·mean(g·x̂))', () => {
    const rng = new TestRng(1);
    const p = { rows: 2, dim: 5, eps: 1e-5 };
    const x = rng.normal(10);
    const w = rng.normal(5, 1, 0.3);
    const dy = rng.normal(10);
    const { mean, rstd } = ref.layerNorm(x, null, null, p);
    const expected = new Float64Array(10);
    for (let r = 0; r < 2; r++) {
      const xhat = [0, 1, 2, 3, 4].map((d) => (x[r * 5 + d]! - mean[r]!) * rstd[r]!);
      const g = [0, 1, 2, 3, 4].map((d) => dy[r * 5 + d]! * w[d]!);
      const mg = g.reduce((a, b) => a + b) / 5;
      const mgx = g.reduce((a, b, d) => a + b * xhat[d]!, 0) / 5;
      for (let d = 0; d < 5; d++) expected[r * 5 + d] = rstd[r]! * (g[d]! - mg - xhat[d]! * mgx);
    }
    close(ref.layerNormBackward(dy, x, w, p).dx, expected, 'dx', 1e-12);
  });
});

describe('reference: rotary', () => {
  it('rotates one pair by position · inv_freq / positionScale', () => {
    const p = { batch: 1, seq: 1, heads: 1, headDim: 2, rotaryDim: 2, base: 10000, positionScale: 1 };
    close(ref.rotary([1, 0], [1], p), [Math.cos(1), Math.sin(1)]);
    close(ref.rotary([1, 0], [1], { ...p, positionScale: 2 }), [Math.cos(0.5), Math.sin(0.5)]);
  });

  it('pairs i with i + rotaryDim/2 (rotate-half) with inv_freq_i = base^(−2i/rotaryDim)', () => {
    const p = { batch: 1, seq: 1, heads: 1, headDim: 4, rotaryDim: 4, base: 100, positionScale: 1 };
    const [c2, s2, c02, s02] = [Math.cos(2), Math.sin(2), Math.cos(0.2), Math.sin(0.2)];
    close(ref.rotary([1, 2, 3, 4], [2], p), [1 * c2 - 3 * s2, 2 * c02 - 4 * s02, 3 * c2 + 1 * s2, 4 * c02 + 2 * s02]);
  });

  it('leaves the features past rotaryDim alone, and backward undoes forward', () => {
    const p = { batch: 1, seq: 1, heads: 1, headDim: 4, rotaryDim: 2, base: 10000, positionScale: 1 };
    close(ref.rotary([1, 2, 3, 4], [3], p), [Math.cos(3) - 2 * Math.sin(3), 2 * Math.cos(3) + Math.sin(3), 3, 4]);
    const x = [0.3, -1, 2, 5];
    close(ref.rotaryBackward(ref.rotary(x, [7], p), [7], p), x, 'round trip', 1e-12);
  });
});

describe('reference: attention', () => {
  const base: AttentionParams = { batch: 1, seqQ: 1, seqK: 2, heads: 1, kvHeads: 1, headDim: 2, scale: 1, causal: false };
  const q = [1, 0];
  const k = [1, 0, 0, 1];
  const v = [1, 2, 3, 4];

  it('attends one query to two keys (computed by hand)', () => {
    // scores [1, 0]: p = [e/(e+1), 1/(e+1)]
    const p0 = Math.E / (Math.E + 1);
    const r = ref.attention(q, k, v, null, base);
    close(r.out, [p0 * 1 + (1 - p0) * 3, p0 * 2 + (1 - p0) * 4]);
    close(r.lse, [Math.log(Math.E + 1)]);
    expect(r.out[0]).toBeCloseTo(1.5379, 4);
  });

  it('applies the causal rule j ≤ i + seqK − seqQ', () => {
    // 2 queries, 2 keys: query 0 sees key 0 only, query 1 sees both.
    const r = ref.attention([1, 0, 1, 0], k, v, null, { ...base, seqQ: 2, causal: true });
    close(r.out.subarray(0, 2), [1, 2]);
    close(r.lse.subarray(0, 1), [1]);
    // 1 query at the end of a 2-key cache sees both keys.
    close(ref.attention(q, k, v, null, { ...base, causal: true }).lse, [Math.log(Math.E + 1)]);
  });

  it('drops padded keys; a row that sees none gets out 0 and lse −∞', () => {
    const one = ref.attention(q, k, v, [0, 1], base);
    close(one.out, [3, 4]);
    close(one.lse, [0]);
    const none = ref.attention(q, k, v, [0, 0], base);
    close(none.out, [0, 0]);
    expect(none.lse[0]).toBe(Number.NEGATIVE_INFINITY);
  });

  it('maps query head h to kv head ⌊h / (heads / kvHeads)⌋', () => {
    // heads 4, kvHeads 2: heads 0,1 → kv 0 (v = 1), heads 2,3 → kv 1 (v = 2).
    const p: AttentionParams = { batch: 1, seqQ: 1, seqK: 1, heads: 4, kvHeads: 2, headDim: 1, scale: 1, causal: false };
    close(ref.attention([1, 1, 1, 1], [0, 0], [1, 2], null, p).out, [1, 1, 2, 2]);
  });
});

describe('reference: activations and loss', () => {
  it('erf and both GELUs at known values', () => {
    close(ref.erf(0.5), 0.5204998778130465, 'erf(0.5)', 1e-15);
    close(ref.erf(1), 0.8427007929497149, 'erf(1)', 1e-15);
    close(ref.erf(-3), -0.9999779095030014, 'erf(-3)', 1e-15);
    close(ref.geluScalar(1, false), 0.8413447460685429, 'gelu(1)', 1e-15);
    close(ref.geluScalar(1, true), 0.8411919906082768, 'gelu_tanh(1)', 1e-15);
    close(ref.geluScalar(-10, false), 0, 'gelu(-10)', 1e-20);
  });

  it('siluMul multiplies silu(gate) by up', () => {
    close(ref.siluMul([1, 0], [2, 5]), [2 * 0.7310585786300049, 0]);
  });

  it('cross-entropy of [0, ln 3]', () => {
    const p = { rows: 2, classes: 2, ignoreIndex: -100 };
    const logits = [0, Math.log(3), 0, Math.log(3)];
    const r = ref.crossEntropy(logits, [1, -100], p);
    close(r.loss, [Math.log(4 / 3), 0]);
    close(r.lse, [Math.log(4), Math.log(4)]);
    close(ref.crossEntropyBackward([2, 1], logits, [1, -100], p), [0.5, -0.5, 0, 0]);
  });

  it('adamw step by hand', () => {
    // g = 0.5·2 = 1; decayed 1 − 0.1·0.1·1 = 0.99; m = 0.1, v = 0.001; m̂ = v̂ = 1; p = 0.99 − 0.1
    const r = ref.adamw([1], [0.5], [0], [0], { lr: 0.1, beta1: 0.9, beta2: 0.999, eps: 0, weightDecay: 0.1, step: 1, gradScale: 2 });
    close(r.param, [0.89]);
    close(r.m, [0.1]);
    close(r.v, [0.001]);
  });

  it('random and dropout follow the Philox reference', () => {
    close(ref.random(9, { seed: 3, offset: 2, distribution: 'uniform', low: -1, high: 1 }), philoxUniform(3, 2, 9, -1, 1));
    close(ref.random(9, { seed: 3, offset: 2, distribution: 'normal', low: 1, high: 2 }), philoxNormal(3, 2, 9, 1, 2));
    const u = philoxUniform(5, 1, 1000);
    const y = ref.dropout(new Float64Array(1000).fill(1), { p: 0.25, seed: 5, offset: 1 });
    for (const [i, v] of y.entries()) expect(v).toBe(u[i]! >= 0.25 ? 1 / 0.75 : 0);
  });
});

describe('reference backward kernels agree with finite differences of the reference forward', () => {
  const rng = new TestRng(7);
  // L = Σ r ⊙ f(x): its gradient is backward(r).
  const check = (
    what: string,
    x: Float64Array,
    forward: (x: Float64Array) => ArrayLike<number>,
    r: ArrayLike<number>,
    grad: ArrayLike<number>,
  ) => {
    const loss = (z: Float64Array) => {
      const y = forward(z);
      let l = 0;
      for (let i = 0; i < y.length; i++) l += r[i]! * y[i]!;
      return l;
    };
    assertClose(grad, finiteDifference(loss, x, 1e-5), { atol: 1e-7, rtol: 1e-6, what });
  };

  it('unaryBackward, every op', () => {
    for (const op of ['neg', 'exp', 'log', 'sqrt', 'rsqrt', 'square', 'abs', 'silu', 'sigmoid', 'tanh', 'relu'] as UnaryOp[]) {
      const x = op === 'log' || op === 'sqrt' || op === 'rsqrt' ? rng.uniform(8, 0.5, 3) : rng.awayFromZero(8, 0.1);
      const r = rng.normal(8);
      check(op, x, (z) => ref.unary(op, z), r, ref.unaryBackward(op, r, x, ref.unary(op, x)));
    }
  });

  it('geluBackward (both), siluMulBackward, dropoutBackward', () => {
    const x = rng.normal(10, 0, 2);
    const r = rng.normal(10);
    for (const approximate of [false, true])
      check(`gelu ${approximate}`, x, (z) => ref.gelu(z, approximate), r, ref.geluBackward(r, x, approximate));
    const up = rng.normal(10);
    const s = ref.siluMulBackward(r, x, up);
    check('siluMul gate', x, (z) => ref.siluMul(z, up), r, s.dGate);
    check('siluMul up', up, (z) => ref.siluMul(x, z), r, s.dUp);
    const p = { p: 0.4, seed: 1, offset: 0 };
    check('dropout', x, (z) => ref.dropout(z, p), r, ref.dropoutBackward(r, p));
  });

  it('layerNormBackward and rmsNormBackward', () => {
    const p = { rows: 2, dim: 6, eps: 1e-5 };
    const x = rng.normal(12, 0.5, 1.5);
    const w = rng.normal(6, 1, 0.5);
    const bias = rng.normal(6);
    const r = rng.normal(12);
    const ln = ref.layerNormBackward(r, x, w, p);
    check('layerNorm dx', x, (z) => ref.layerNorm(z, w, bias, p).out, r, ln.dx);
    check('layerNorm dWeight', w, (z) => ref.layerNorm(x, z, bias, p).out, r, ln.dWeight);
    check('layerNorm dBias', bias, (z) => ref.layerNorm(x, w, z, p).out, r, ln.dBias);
    check('layerNorm dx, no weight', x, (z) => ref.layerNorm(z, null, null, p).out, r, ref.layerNormBackward(r, x, null, p).dx);
    const rms = ref.rmsNormBackward(r, x, w, p);
    check('rmsNorm dx', x, (z) => ref.rmsNorm(z, w, p).out, r, rms.dx);
    check('rmsNorm dWeight', w, (z) => ref.rmsNorm(x, z, p).out, r, rms.dWeight);
  });

  it('rotaryBackward, embeddingBackward, crossEntropyBackward', () => {
    const p = { batch: 1, seq: 2, heads: 2, headDim: 6, rotaryDim: 4, base: 10000, positionScale: 1.5 };
    const x = rng.normal(24);
    const r = rng.normal(24);
    check('rotary', x, (z) => ref.rotary(z, [3, 11], p), r, ref.rotaryBackward(r, [3, 11], p));
    const w = rng.normal(8);
    check(
      'embedding',
      w,
      (z) => ref.embedding(z, [1, 3, 1], 3, 2),
      r.subarray(0, 6),
      ref.embeddingBackward(r.subarray(0, 6), [1, 3, 1], 3, 2, 4),
    );
    const cp = { rows: 3, classes: 4, ignoreIndex: -100 };
    const logits = rng.normal(12, 0, 2);
    const dLoss = rng.normal(3);
    check(
      'crossEntropy',
      logits,
      (z) => ref.crossEntropy(z, [2, -100, 0], cp).loss,
      dLoss,
      ref.crossEntropyBackward(dLoss, logits, [2, -100, 0], cp),
    );
  });

  it('attentionBackward with causal rule, padding, GQA and a row that sees no key', () => {
    const p: AttentionParams = { batch: 2, seqQ: 2, seqK: 3, heads: 4, kvHeads: 2, headDim: 3, scale: 0.6, causal: true };
    const mask = [1, 1, 1, 0, 0, 1];
    const q = rng.normal(48);
    const k = rng.normal(36);
    const v = rng.normal(36);
    const r = rng.normal(48);
    const g = ref.attentionBackward(r, q, k, v, mask, p);
    check('dq', q, (z) => ref.attention(z, k, v, mask, p).out, r, g.dq);
    check('dk', k, (z) => ref.attention(q, z, v, mask, p).out, r, g.dk);
    check('dv', v, (z) => ref.attention(q, k, z, mask, p).out, r, g.dv);
  });

  it('matmul backward by flags', () => {
    const p = mm({ m: 2, n: 3, k: 4 });
    const a = rng.normal(8);
    const b = rng.normal(12);
    const r = rng.normal(6);
    check('dA = dY·Bᵀ', a, (z) => ref.matmul(z, b, p), r, ref.matmul(r, b, mm({ m: 2, n: 4, k: 3, transB: true })));
    check('dB = Aᵀ·dY', b, (z) => ref.matmul(a, z, p), r, ref.matmul(a, r, mm({ m: 4, n: 3, k: 2, transA: true })));
  });
});
