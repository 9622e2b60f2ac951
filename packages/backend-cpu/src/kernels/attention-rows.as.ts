// @ts-nocheck -- AssemblyScript source (compiled by scripts/build-wasm.mjs), not TypeScript.
//
// Row kernels of the CPU backend's attention (attention.ts, attention-rows.ts) in WebAssembly
// SIMD (128-bit): the forward's softmax of a block of score rows, and the backward's
// P = exp(S − lse), D_i = Σ_j P_ij·dP_ij and dS = P·(dP − D_i).
//
// A block is `rows` rows of `n` float32 values, `ld` apart (ld a multiple of 4, ≥ n, so that a
// row's last vector stays inside its row). Row r sees its first seen(r) = clamp(seen0 + r·step,
// 0, n) entries (the causal rule); the rest of the row is set to 0. With `bias` (a byte pointer, 0
// for none), the float32 bias[c] (0 for a real key, −∞ for padding) is added to entry c of every
// row first; bias has ld entries (those past n are read, never used). Sums are float64. No
// allocation, no runtime.
//
// The polynomial and range constants live in memory (`init` stores them; expRow loads them once
// per row): as v128 constants V8 rebuilds each of them inside the loop on every iteration (a
// 64-bit move and a shuffle each), which made the exp loop half again slower.

/** Byte offsets of the constants from the `k` pointer `init` was given (13 float32). */
const C_HI = 0; // 88: inputs are clamped to it
const C_LOG2E = 4;
const C_MAGIC = 8; // 1.5·2²³: x + MAGIC rounds x to an integer in the low mantissa bits
const C_LN2_HI = 12;
const C_LN2_LO = 16;
const C_P0 = 20;
const C_P1 = 24;
const C_P2 = 28;
const C_P3 = 32;
const C_P4 = 36;
const C_P5 = 40;
const C_ONE = 44;
const C_LO = 48; // −86.6: below it e^x underflows (and 2^t leaves the normal range), giving 0

/** Stores the constants at byte offset k (52 bytes); once, before the kernels are called with k. */
export function init(k: usize): void {
  store<f32>(k + C_HI, 88.0);
  store<f32>(k + C_LOG2E, <f32>Math.LOG2E);
  store<f32>(k + C_MAGIC, 12582912.0);
  store<f32>(k + C_LN2_HI, 0.693359375);
  store<f32>(k + C_LN2_LO, -2.1219444e-4);
  store<f32>(k + C_P0, 1.98756915e-4);
  store<f32>(k + C_P1, 1.3981999507e-3);
  store<f32>(k + C_P2, 8.3334519073e-3);
  store<f32>(k + C_P3, 4.1665795894e-2);
  store<f32>(k + C_P4, 1.6666665459e-1);
  store<f32>(k + C_P5, 5.0000001201e-1);
  store<f32>(k + C_ONE, 1.0);
  store<f32>(k + C_LO, -86.6);
}

/**
 * e^x in each lane: x = t·ln 2 + r with t = round(x·log2 e) (by the magic-number addition) and
 * ln 2 split in two (Cody–Waite), e^r = 1 + r + r²·P(r) with Cephes' expf polynomial P on
 * |r| ≤ ln 2 / 2 (about 1 ulp; Estrin's scheme, a shorter dependency chain than Horner's), 2^t
 * added to the exponent bits. Lanes below −86.6 (e^x < 2.6e-38), −∞ included, give 0; lanes
 * above 88 are clamped to it. The other arguments are the constants (see init).
 */
function exp4(
  x: v128,
  hi: v128,
  log2e: v128,
  magic: v128,
  ln2hi: v128,
  ln2lo: v128,
  p0: v128,
  p1: v128,
  p2: v128,
  p3: v128,
  p4: v128,
  p5: v128,
  one: v128,
  lo: v128,
): v128 {
  const xc = f32x4.pmin(x, hi);
  const tm = f32x4.add(f32x4.mul(xc, log2e), magic);
  const t = f32x4.sub(tm, magic);
  const r = f32x4.sub(f32x4.sub(xc, f32x4.mul(t, ln2hi)), f32x4.mul(t, ln2lo));
  const r2 = f32x4.mul(r, r);
  const a = f32x4.add(f32x4.mul(p0, r), p1);
  const b = f32x4.add(f32x4.mul(p2, r), p3);
  const c = f32x4.add(f32x4.mul(p4, r), p5);
  const y = f32x4.add(f32x4.mul(a, f32x4.mul(r2, r2)), f32x4.add(f32x4.mul(b, r2), c));
  const e = f32x4.add(f32x4.add(f32x4.mul(y, r2), r), one);
  // The low bits of tm hold t (two's complement, |t| ≤ 128): shifted into the exponent field.
  return v128.andnot(i32x4.add(e, i32x4.shl(tm, 23)), f32x4.lt(x, lo));
}

function sum2(acc: v128): f64 {
  return f64x2.extract_lane(acc, 0) + f64x2.extract_lane(acc, 1);
}

/** acc + the four lanes of v, widened to float64. */
function addWide(acc: v128, v: v128): v128 {
  acc = f64x2.add(acc, f64x2.promote_low_f32x4(v));
  return f64x2.add(acc, f64x2.promote_low_f32x4(v128.shuffle<f32>(v, v, 2, 3, 0, 1)));
}

function seenOf(r: i32, n: i32, seen0: i32, step: i32): i32 {
  return min(max(seen0 + r * step, 0), n);
}

/** All ones in the lanes c + l < seen of a vector starting at entry c. */
function below(c: i32, seen: i32): v128 {
  return i32x4.lt_s(i32x4.add(i32x4.splat(c), v128(0, 0, 0, 0, 1, 0, 0, 0, 2, 0, 0, 0, 3, 0, 0, 0)), i32x4.splat(seen));
}

/** Entry c of a row plus the bias of key c (bias 0: none). */
function biased(row: usize, bias: usize, at: usize): v128 {
  const x = v128.load(row + at);
  return bias ? f32x4.add(x, v128.load(bias + at)) : x;
}

/**
 * row[c] ← e^(row[c] + bias[c] − sub) for c < seen, 0 for the lanes of the last vector past seen;
 * returns the end of the written entries (seen rounded up to a multiple of 4). Two vectors per
 * iteration: their exps overlap, one alone waits on its own chain of dependent operations.
 */
function expRow(row: usize, seen: i32, bias: usize, sub: f32, k: usize): i32 {
  const hi = v128.load32_splat(k + C_HI);
  const log2e = v128.load32_splat(k + C_LOG2E);
  const magic = v128.load32_splat(k + C_MAGIC);
  const ln2hi = v128.load32_splat(k + C_LN2_HI);
  const ln2lo = v128.load32_splat(k + C_LN2_LO);
  const p0 = v128.load32_splat(k + C_P0);
  const p1 = v128.load32_splat(k + C_P1);
  const p2 = v128.load32_splat(k + C_P2);
  const p3 = v128.load32_splat(k + C_P3);
  const p4 = v128.load32_splat(k + C_P4);
  const p5 = v128.load32_splat(k + C_P5);
  const one = v128.load32_splat(k + C_ONE);
  const lo = v128.load32_splat(k + C_LO);
  const s = f32x4.splat(sub);
  const full = seen & ~3;
  let c = 0;
  for (; c + 8 <= full; c += 8) {
    const at = (<usize>c) << 2;
    const e0 = exp4(f32x4.sub(biased(row, bias, at), s), hi, log2e, magic, ln2hi, ln2lo, p0, p1, p2, p3, p4, p5, one, lo);
    const e1 = exp4(f32x4.sub(biased(row, bias, at + 16), s), hi, log2e, magic, ln2hi, ln2lo, p0, p1, p2, p3, p4, p5, one, lo);
    v128.store(row + at, e0);
    v128.store(row + at, e1, 16);
  }
  if (c < seen) {
    // One or two vectors left, the last one masked past seen.
    for (; c < seen; c += 4) {
      const at = (<usize>c) << 2;
      const e = exp4(f32x4.sub(biased(row, bias, at), s), hi, log2e, magic, ln2hi, ln2lo, p0, p1, p2, p3, p4, p5, one, lo);
      v128.store(row + at, c + 4 <= seen ? e : v128.and(e, below(c, seen)));
    }
  }
  return c;
}

/** Entries [c, end) of a row set to 0 (c and end multiples of 4): vector stores, cheaper than memory.fill's call for short tails. */
function zero(row: usize, c: i32, end: i32): void {
  const z = f32x4.splat(0);
  for (; c < end; c += 4) v128.store(row + ((<usize>c) << 2), z);
}

/** Σ of the float32 values [0, n) at p (n a multiple of 4) in float64, in two chains. */
function sumRow(p: usize, n: i32): f64 {
  let a = f64x2.splat(0);
  let b = f64x2.splat(0);
  let c = 0;
  for (; c + 8 <= n; c += 8) {
    a = addWide(a, v128.load(p + ((<usize>c) << 2)));
    b = addWide(b, v128.load(p + ((<usize>c) << 2), 16));
  }
  if (c < n) a = addWide(a, v128.load(p + ((<usize>c) << 2)));
  return sum2(f64x2.add(a, b));
}

/**
 * Softmax of each row over what it sees, normalized: row ← e^(x − max) / Σ e^(x − max) (0 where
 * unseen, up to ld), maxOut[r] = max (float32), sumOut[r] = Σ e^(x − max) (float64, before
 * normalizing). A row that sees no key (max −∞) becomes all 0 with max −∞ and sum 0; one whose
 * seen entries are all NaN gets max and sum NaN. k: the constants (init).
 */
export function softmaxRows(
  s: usize,
  rows: i32,
  n: i32,
  ld: i32,
  seen0: i32,
  step: i32,
  bias: usize,
  maxOut: usize,
  sumOut: usize,
  k: usize,
): void {
  const ninf = f32x4.splat(-Infinity);
  for (let r = 0; r < rows; r++) {
    const row = s + ((<usize>(r * ld)) << 2);
    const seen = seenOf(r, n, seen0, step);
    const full = seen & ~3;
    // Max over the seen entries (pmax: a NaN drops out here, but reaches the sum below).
    let mv = ninf;
    let c = 0;
    for (; c < full; c += 4) mv = f32x4.pmax(mv, biased(row, bias, (<usize>c) << 2));
    if (c < seen) mv = f32x4.pmax(mv, v128.bitselect(biased(row, bias, (<usize>c) << 2), ninf, below(c, seen)));
    mv = f32x4.pmax(mv, v128.shuffle<f32>(mv, mv, 2, 3, 0, 1));
    mv = f32x4.pmax(mv, v128.shuffle<f32>(mv, mv, 1, 0, 3, 2));
    const m = f32x4.extract_lane(mv, 0);
    if (m === -Infinity) {
      let nan = false;
      for (let j = 0; j < seen; j++) {
        const x = load<f32>(row + ((<usize>j) << 2)) + (bias ? load<f32>(bias + ((<usize>j) << 2)) : 0);
        if (Number.isNaN(x)) nan = true;
      }
      store<f32>(maxOut + ((<usize>r) << 2), nan ? NaN : m);
      store<f64>(sumOut + ((<usize>r) << 3), nan ? NaN : 0);
      memory.fill(row, 0, (<usize>ld) << 2);
      if (nan) for (let j = 0; j < seen; j++) store<f32>(row + ((<usize>j) << 2), NaN);
      continue;
    }
    store<f32>(maxOut + ((<usize>r) << 2), m);
    // The exps, their sum and the normalization are loops of their own: summing in the exp loop
    // chains every iteration through the accumulator, which V8 spills beside the constants.
    c = expRow(row, seen, bias, m, k);
    const sum = sumRow(row, c);
    store<f64>(sumOut + ((<usize>r) << 3), sum);
    const inv = f32x4.splat(<f32>(1.0 / sum));
    for (let j = 0; j < c; j += 4) {
      const at = (<usize>j) << 2;
      v128.store(row + at, f32x4.mul(v128.load(row + at), inv));
    }
    zero(row, c, ld);
  }
}

/**
 * The backward's row math, in place: p holds the scores S and becomes P = e^(S − lse[r]) (0
 * where unseen, up to ld), ds holds dP and becomes dS = P·(dP − D_r) with D_r = Σ_c P·dP. A row
 * whose lse is −∞ becomes all 0 in both. k: the constants (init).
 */
export function gradRows(p: usize, ds: usize, rows: i32, n: i32, ld: i32, seen0: i32, step: i32, bias: usize, lse: usize, k: usize): void {
  for (let r = 0; r < rows; r++) {
    const off = (<usize>(r * ld)) << 2;
    const pr = p + off;
    const dr = ds + off;
    const l = load<f32>(lse + ((<usize>r) << 2));
    const seen = l === -Infinity ? 0 : seenOf(r, n, seen0, step);
    const c = expRow(pr, seen, bias, l, k);
    // Past `seen` dP holds whatever the GEMM or the padding left: those lanes are masked out.
    const full = seen & ~3;
    let a = f64x2.splat(0);
    let b = f64x2.splat(0);
    let j = 0;
    for (; j + 8 <= full; j += 8) {
      const at = (<usize>j) << 2;
      a = addWide(a, f32x4.mul(v128.load(pr + at), v128.load(dr + at)));
      b = addWide(b, f32x4.mul(v128.load(pr + at, 16), v128.load(dr + at, 16)));
    }
    for (; j < c; j += 4) {
      const at = (<usize>j) << 2;
      a = addWide(a, v128.and(f32x4.mul(v128.load(pr + at), v128.load(dr + at)), below(j, seen)));
    }
    const d = f32x4.splat(<f32>sum2(f64x2.add(a, b)));
    j = 0;
    for (; j < full; j += 4) {
      const at = (<usize>j) << 2;
      v128.store(dr + at, f32x4.mul(v128.load(pr + at), f32x4.sub(v128.load(dr + at), d)));
    }
    if (j < c) {
      const at = (<usize>j) << 2;
      v128.store(dr + at, v128.and(f32x4.mul(v128.load(pr + at), f32x4.sub(v128.load(dr + at), d)), below(j, seen)));
    }
    zero(pr, c, ld);
    zero(dr, c, ld);
  }
}
