// @ts-nocheck -- AssemblyScript source (compiled by scripts/build-wasm.mjs), not TypeScript.
//
// Philox4x32-10 words and their uniform / normal transforms for WebAssembly SIMD (128-bit), the
// numbers of core's philoxUniform / philoxNormal bit for bit (see kernels/random.ts for how the
// host uses each export). All pointers are byte offsets into the module's own memory, which the
// host lays out and grows; no allocation, no runtime, no data segments.

const M0: u32 = 0xd2511f53;
const M1: u32 = 0xcd9e8d57;
const W0: u32 = 0x9e3779b9;
const W1: u32 = 0xbb67ae85;

// The tables the host fills (see `normal`), at address 0 so that their offsets fold into loads.
const HI_TABLE: usize = 0; // 4096 x (cos, sin) of 2π h / 2¹²
const LO_TABLE: usize = 4096 * 16; // 4096 x (cos, sin) of 2π l / 2²⁴
const LOG_TABLE: usize = LO_TABLE + 4096 * 16; // 257 x (1 / c, ln c), c = 1 + i / 256
/** Bytes of the tables. */
export const TABLE_BYTES: usize = LOG_TABLE + 257 * 16;

const LN2: f64 = Math.LN2;
// Error allowance relative to |std · r| (see `normal`).
const SLACK: f64 = 3.637978807091713e-12; // 2⁻³⁸
const MEAN_SLACK: f64 = 1.7763568394002505e-15; // 2⁻⁴⁹

// Vector constants live in memory (written by `init`) and are loaded once per call: as v128.const
// in a loop they would be rebuilt on every iteration.
const K_MANT: usize = 0; // i64 mantissa mask
const K_ROUND: usize = 16; // i64 2⁴³: rounds the mantissa's top 8 bits
const K_ONE: usize = 32; // f64 1 (also the exponent bits of y ∈ [1, 2))
const K_MAGIC: usize = 48; // i64 bits of 2⁵²
const K_MAGIC24: usize = 64; // f64 2⁵² + 1023 + 24
const K_C6: usize = 80; // the series' coefficients −1/6 … −1/2
const K_C5: usize = 96;
const K_C4: usize = 112;
const K_C3: usize = 128;
const K_C2: usize = 144;
const K_LN2: usize = 160;
const K_MINUS2: usize = 176;
const K_SLACK: usize = 192;
const K_ONES: usize = 208; // i32 (1, 1, 1, 1)
const K_UNIT: usize = 224; // f64 2⁻²⁴
const K_M0: usize = 240; // i32 Philox multipliers
const K_M1: usize = 256;
const K_IOTA: usize = 272; // i32 (0, 1, 2, 3) and (4, 5, 6, 7)
const K_LO_MASK: usize = 304; // i32 0xfff0: 16 × a word's bits 8..19
const K_BF16_ROUND: usize = 320; // i32 0x7fff
const K_BF16_ABS: usize = 336; // i32 0x7fffffff
const K_BF16_INF: usize = 352; // i32 0x7f800000
const K_BF16_QUIET: usize = 368; // i32 0x40
/** Bytes of the constants. */
export const CONST_BYTES: usize = 384;
/** Bytes of a call's scratch frame (philox's 20 round keys; normal's and uniform's splats). */
export const FRAME_BYTES: usize = 320;

/** Writes the constants at k (16-byte aligned). */
export function init(k: usize): void {
  v128.store(k + K_MANT, i64x2.splat(0x000fffffffffffff));
  v128.store(k + K_ROUND, i64x2.splat(1 << 43));
  v128.store(k + K_ONE, f64x2.splat(1));
  v128.store(k + K_MAGIC, i64x2.splat(0x4330000000000000));
  v128.store(k + K_MAGIC24, f64x2.splat(4503599627371543));
  v128.store(k + K_C6, f64x2.splat(-1.0 / 6.0));
  v128.store(k + K_C5, f64x2.splat(0.2));
  v128.store(k + K_C4, f64x2.splat(-0.25));
  v128.store(k + K_C3, f64x2.splat(1.0 / 3.0));
  v128.store(k + K_C2, f64x2.splat(-0.5));
  v128.store(k + K_LN2, f64x2.splat(LN2));
  v128.store(k + K_MINUS2, f64x2.splat(-2));
  v128.store(k + K_SLACK, f64x2.splat(SLACK));
  v128.store(k + K_ONES, i32x4.splat(1));
  v128.store(k + K_UNIT, f64x2.splat(5.9604644775390625e-8));
  v128.store(k + K_M0, i32x4.splat(M0));
  v128.store(k + K_M1, i32x4.splat(M1));
  v128.store(k + K_IOTA, i32x4(0, 1, 2, 3));
  v128.store(k + K_IOTA + 16, i32x4(4, 5, 6, 7));
  v128.store(k + K_LO_MASK, i32x4.splat(0xfff0));
  v128.store(k + K_BF16_ROUND, i32x4.splat(0x7fff));
  v128.store(k + K_BF16_ABS, i32x4.splat(0x7fffffff));
  v128.store(k + K_BF16_INF, i32x4.splat(0x7f800000));
  v128.store(k + K_BF16_QUIET, i32x4.splat(0x40));
}

// Stores 4 blocks held one word per vector (lane j = block j) as 4 consecutive blocks.
function storeBlocks(p: usize, x0: v128, x1: v128, x2: v128, x3: v128): void {
  const t0 = i32x4.shuffle(x0, x1, 0, 4, 1, 5);
  const t1 = i32x4.shuffle(x2, x3, 0, 4, 1, 5);
  const t2 = i32x4.shuffle(x0, x1, 2, 6, 3, 7);
  const t3 = i32x4.shuffle(x2, x3, 2, 6, 3, 7);
  v128.store(p, i64x2.shuffle(t0, t1, 0, 2));
  v128.store(p, i64x2.shuffle(t0, t1, 1, 3), 16);
  v128.store(p, i64x2.shuffle(t2, t3, 0, 2), 32);
  v128.store(p, i64x2.shuffle(t2, t3, 1, 3), 48);
}

/**
 * Writes the Philox4x32-10 words of counters c + b, b in [0, nBlocks) rounded up to 8,
 * c = cHi · 2³² + cLo, key (k0, k1): block b's 4 words at out + 16 b. Eight blocks at a time, four
 * per vector. k: the constants (`init`); frame: scratch for the round keys.
 */
export function philox(out: usize, k0: u32, k1: u32, cLo: u32, cHi: u32, nBlocks: i32, k: usize, frame: usize): void {
  const c0: u64 = ((cHi as u64) << 32) | (cLo as u64);
  const m0 = v128.load(k + K_M0);
  const m1 = v128.load(k + K_M1);
  const iota0 = v128.load(k + K_IOTA);
  const iota4 = v128.load(k + K_IOTA + 16);
  let a0 = k0;
  let a1 = k1;
  for (let r: usize = 0; r < 10; r++) {
    v128.store(frame + (r << 5), i32x4.splat(a0));
    v128.store(frame + (r << 5), i32x4.splat(a1), 16);
    a0 += W0;
    a1 += W1;
  }
  for (let b = 0; b < nBlocks; b += 8) {
    // counters c .. c + 7: low words wrap, and a lane whose low word wrapped carries into its high word
    const c = c0 + (b as u64);
    const lo = i32x4.splat(c as u32);
    const hi = i32x4.splat((c >> 32) as u32);
    let x0 = i32x4.add(lo, iota0);
    let y0 = i32x4.add(lo, iota4);
    let x1 = i32x4.sub(hi, i32x4.lt_u(x0, lo));
    let y1 = i32x4.sub(hi, i32x4.lt_u(y0, lo));
    let x2 = i32x4.splat(0);
    let x3 = i32x4.splat(0);
    let y2 = i32x4.splat(0);
    let y3 = i32x4.splat(0);
    for (let r: usize = 0; r < 10; r++) {
      const ka = v128.load(frame + (r << 5));
      const kb = v128.load(frame + (r << 5), 16);
      // 64-bit products M0 · x0 and M1 · x2 per lane; their high words feed x0, x2, the low ones x3, x1.
      const p0l = i64x2.extmul_low_i32x4_u(x0, m0);
      const p0h = i64x2.extmul_high_i32x4_u(x0, m0);
      const q0l = i64x2.extmul_low_i32x4_u(y0, m0);
      const q0h = i64x2.extmul_high_i32x4_u(y0, m0);
      const p1l = i64x2.extmul_low_i32x4_u(x2, m1);
      const p1h = i64x2.extmul_high_i32x4_u(x2, m1);
      const q1l = i64x2.extmul_low_i32x4_u(y2, m1);
      const q1h = i64x2.extmul_high_i32x4_u(y2, m1);
      const nx0 = v128.xor(v128.xor(i32x4.shuffle(p1l, p1h, 1, 3, 5, 7), x1), ka);
      const ny0 = v128.xor(v128.xor(i32x4.shuffle(q1l, q1h, 1, 3, 5, 7), y1), ka);
      const nx2 = v128.xor(v128.xor(i32x4.shuffle(p0l, p0h, 1, 3, 5, 7), x3), kb);
      const ny2 = v128.xor(v128.xor(i32x4.shuffle(q0l, q0h, 1, 3, 5, 7), y3), kb);
      x1 = i32x4.shuffle(p1l, p1h, 0, 2, 4, 6);
      y1 = i32x4.shuffle(q1l, q1h, 0, 2, 4, 6);
      x3 = i32x4.shuffle(p0l, p0h, 0, 2, 4, 6);
      y3 = i32x4.shuffle(q0l, q0h, 0, 2, 4, 6);
      x0 = nx0;
      y0 = ny0;
      x2 = nx2;
      y2 = ny2;
    }
    const p = out + ((b as usize) << 4);
    storeBlocks(p, x0, x1, x2, x3);
    storeBlocks(p + 64, y0, y1, y2, y3);
  }
}

/**
 * out[i] = f32(low + scale · ((w[i] >>> 8) · 2⁻²⁴)) for i in [0, n) rounded up to 4, each step in
 * float64 as philoxUniform computes it (WebAssembly has no fused multiply-add to change that).
 */
export function uniform(words: usize, out: usize, n: i32, low: f64, scale: f64, k: usize, frame: usize): void {
  v128.store(frame, f64x2.splat(low));
  v128.store(frame, f64x2.splat(scale), 16);
  const lo = v128.load(frame);
  const sc = v128.load(frame, 16);
  const unit = v128.load(k + K_UNIT);
  for (let i = 0; i < n; i += 4) {
    const m = i32x4.shr_u(v128.load(words + ((i as usize) << 2)), 8);
    const a = f64x2.add(lo, f64x2.mul(sc, f64x2.mul(f64x2.convert_low_i32x4_u(m), unit)));
    const b = f64x2.add(lo, f64x2.mul(sc, f64x2.mul(f64x2.convert_low_i32x4_u(i32x4.shuffle(m, m, 2, 3, 2, 3)), unit)));
    v128.store(out + ((i as usize) << 2), i64x2.shuffle(f32x4.demote_f64x2_zero(a), f32x4.demote_f64x2_zero(b), 0, 2));
  }
}

/**
 * Dropout of one chunk: out[i] = keep ? x[i] · scale : 0 with keep = (w[i] >>> 8) ≥ keepFrom, the
 * product in float64 rounded to float32 as the reference computes it, for i in [0, n) rounded up
 * to 8. float32 x and out, or (bf16) bfloat16 bits in and out, rounded to nearest even (a NaN
 * stays a quiet NaN) as the host's storeF32 does.
 */
export function dropout(words: usize, x: usize, out: usize, n: i32, keepFrom: u32, scale: f64, bf16: bool, k: usize, frame: usize): void {
  v128.store(frame, f64x2.splat(scale));
  v128.store(frame, i32x4.splat(keepFrom), 16);
  const sc = v128.load(frame);
  const from = v128.load(frame, 16);
  if (!bf16) {
    for (let i = 0; i < n; i += 4) {
      const keep = i32x4.ge_u(i32x4.shr_u(v128.load(words + ((i as usize) << 2)), 8), from);
      v128.store(out + ((i as usize) << 2), v128.and(scaleF32(v128.load(x + ((i as usize) << 2)), sc), keep));
    }
    return;
  }
  const ones = v128.load(k + K_ONES);
  const roundBit = v128.load(k + K_BF16_ROUND);
  const absMask = v128.load(k + K_BF16_ABS);
  const infBits = v128.load(k + K_BF16_INF);
  const quiet = v128.load(k + K_BF16_QUIET);
  for (let i = 0; i < n; i += 8) {
    const raw = v128.load(x + ((i as usize) << 1));
    const w = words + ((i as usize) << 2);
    const a = v128.and(scaleF32(i32x4.shl(i32x4.extend_low_i16x8_u(raw), 16), sc), i32x4.ge_u(i32x4.shr_u(v128.load(w), 8), from));
    const b = v128.and(scaleF32(i32x4.shl(i32x4.extend_high_i16x8_u(raw), 16), sc), i32x4.ge_u(i32x4.shr_u(v128.load(w, 16), 8), from));
    const ra = bf16Bits(a, ones, roundBit, absMask, infBits, quiet);
    const rb = bf16Bits(b, ones, roundBit, absMask, infBits, quiet);
    v128.store(out + ((i as usize) << 1), i16x8.narrow_i32x4_u(ra, rb));
  }
}

/** dst[i] = the bfloat16 bits of float32 src[i] (round to nearest even, NaN stays a quiet NaN), i in [0, n) rounded up to 8. */
export function roundBf16(src: usize, dst: usize, n: i32, k: usize): void {
  const ones = v128.load(k + K_ONES);
  const roundBit = v128.load(k + K_BF16_ROUND);
  const absMask = v128.load(k + K_BF16_ABS);
  const infBits = v128.load(k + K_BF16_INF);
  const quiet = v128.load(k + K_BF16_QUIET);
  for (let i = 0; i < n; i += 8) {
    const a = bf16Bits(v128.load(src + ((i as usize) << 2)), ones, roundBit, absMask, infBits, quiet);
    const b = bf16Bits(v128.load(src + ((i as usize) << 2), 16), ones, roundBit, absMask, infBits, quiet);
    v128.store(dst + ((i as usize) << 1), i16x8.narrow_i32x4_u(a, b));
  }
}

// float32 x · scale, the product in float64.
function scaleF32(x: v128, scale: v128): v128 {
  const a = f32x4.demote_f64x2_zero(f64x2.mul(f64x2.promote_low_f32x4(x), scale));
  const b = f32x4.demote_f64x2_zero(f64x2.mul(f64x2.promote_low_f32x4(i64x2.shuffle(x, x, 1, 1)), scale));
  return i64x2.shuffle(a, b, 0, 2);
}

// bfloat16 bits (in 32-bit lanes) of float32 bits: round to nearest even, NaN → quiet NaN.
function bf16Bits(x: v128, ones: v128, roundBit: v128, absMask: v128, infBits: v128, quiet: v128): v128 {
  const rounded = i32x4.shr_u(i32x4.add(i32x4.add(x, roundBit), v128.and(i32x4.shr_u(x, 16), ones)), 16);
  const nan = i32x4.gt_u(v128.and(x, absMask), infBits);
  return v128.bitselect(v128.or(i32x4.shr_u(x, 16), quiet), rounded, nan);
}

/**
 * philoxNormal's Box–Muller on word pairs (w[2j], w[2j+1]) for j in [0, nPairs) (nPairs even):
 * out[2j], out[2j+1] as float32, and the indices j whose rounding this fast path cannot vouch for
 * at fails (4 bytes each); returns how many. The host recomputes those pairs as the reference does.
 * k: the constants (`init`); frame: 48 bytes of scratch; the tables at address 0.
 *
 * The fast path replaces Math.log, Math.cos and Math.sin by tables (filled by the host with those
 * functions): cos/sin of 2π k 2⁻²⁴ from the angle sum of its top and bottom 12 bits, and
 * ln u1 = (e − 24) ln 2 + ln c + log1p(d) with u1 2²⁴ = 2^e · y, y ∈ [1, 2), c the nearest of
 * 1 + i/256 to y and d = y / c − 1, |d| ≤ 2⁻⁹ (degree-6 series). Its r = √(−2 ln u1) is within
 * 2⁻⁴² r of the reference's and (cos, sin) within 2⁻⁴⁷ (the tests check all 2²⁴ inputs of each;
 * measured: 2⁻⁴³·⁹ and 2⁻⁵⁰), so with the roundings the float64 result z is within
 * |std r| 2⁻⁴¹·⁵ + |mean| 2⁻⁵² of the reference's. A pair is written when z ∓ dz,
 * dz = |std r| 2⁻³⁸ + |mean| 2⁻⁴⁹, round to the same nonzero float32, which is then the
 * reference's float32 too (rounding is monotonic). About 1 pair in 1000 falls back.
 */
export function normal(words: usize, out: usize, nPairs: i32, mean: f64, std: f64, fails: usize, k: usize, frame: usize): i32 {
  v128.store(frame, f64x2.splat(mean));
  v128.store(frame, f64x2.splat(std), 16);
  v128.store(frame, f64x2.splat(Math.abs(mean) * MEAN_SLACK), 32);
  const mv = v128.load(frame);
  const sd = v128.load(frame, 16);
  const meanSlack = v128.load(frame, 32);
  const mantMask = v128.load(k + K_MANT);
  const round = v128.load(k + K_ROUND);
  const one = v128.load(k + K_ONE);
  const magic = v128.load(k + K_MAGIC);
  const magic24 = v128.load(k + K_MAGIC24);
  const c6 = v128.load(k + K_C6);
  const c5 = v128.load(k + K_C5);
  const c4 = v128.load(k + K_C4);
  const c3 = v128.load(k + K_C3);
  const c2 = v128.load(k + K_C2);
  const ln2 = v128.load(k + K_LN2);
  const minus2 = v128.load(k + K_MINUS2);
  const slack = v128.load(k + K_SLACK);
  const ones = v128.load(k + K_ONES);
  const loMask = v128.load(k + K_LO_MASK);
  let nf = 0;
  for (let j = 0; j < nPairs; j += 2) {
    // lanes: pair j, pair j + 1
    const w = v128.load(words + ((j as usize) << 3)); // (a0, b0, a1, b1)
    const m = i32x4.shr_u(w, 8);
    // v = m + 1 ∈ [1, 2²⁴] as float64: exponent e and mantissa y ∈ [1, 2) from its bits
    const v = f64x2.convert_low_i32x4_u(i32x4.add(i32x4.shuffle(m, m, 0, 2, 0, 2), ones));
    const mant = v128.and(v, mantMask);
    const ix = i64x2.shl(i64x2.shr_u(i64x2.add(mant, round), 44), 4); // 16 round((y − 1) 256)
    const y = v128.or(mant, one);
    // e − 24 = biased exponent − 1047, exactly, as (2⁵² + biased) − (2⁵² + 1047)
    const e = f64x2.sub(v128.or(i64x2.shr_u(v, 52), magic), magic24);
    const g0 = i64x2.extract_lane(ix, 0) as usize;
    const g1 = i64x2.extract_lane(ix, 1) as usize;
    const g = v128.load64_lane(g1, v128.load64_zero(g0, LOG_TABLE), 1, LOG_TABLE);
    const lc = v128.load64_lane(g1, v128.load64_zero(g0, LOG_TABLE + 8), 1, LOG_TABLE + 8);
    const d = f64x2.sub(f64x2.mul(y, g), one);
    // log1p(d) = d (1 − d/2 + d²(1/3 − d/4) + d⁴(1/5 − d/6)), in Estrin's order (a shorter dependency chain)
    const d2 = f64x2.mul(d, d);
    const q1 = f64x2.add(one, f64x2.mul(d, c2));
    const q2 = f64x2.add(c3, f64x2.mul(d, c4));
    const q3 = f64x2.add(c5, f64x2.mul(d, c6));
    const p = f64x2.mul(d, f64x2.add(q1, f64x2.mul(d2, f64x2.add(q2, f64x2.mul(d2, q3)))));
    const lnU = f64x2.add(f64x2.add(f64x2.mul(e, ln2), lc), p);
    const sr = f64x2.mul(sd, f64x2.sqrt(f64x2.mul(minus2, lnU)));
    const dz = f64x2.add(f64x2.mul(f64x2.abs(sr), slack), meanSlack);
    // (cos, sin) of 2π k 2⁻²⁴ = angle sum of the entries of k's top and bottom 12 bits
    const hiOff = i32x4.shl(i32x4.shr_u(w, 20), 4);
    const loOff = v128.and(i32x4.shr_u(w, 4), loMask);
    const h0 = i32x4.extract_lane(hiOff, 1) as usize;
    const h1 = i32x4.extract_lane(hiOff, 3) as usize;
    const l0 = i32x4.extract_lane(loOff, 1) as usize;
    const l1 = i32x4.extract_lane(loOff, 3) as usize;
    const ch = v128.load64_lane(h1, v128.load64_zero(h0, HI_TABLE), 1, HI_TABLE);
    const sh = v128.load64_lane(h1, v128.load64_zero(h0, HI_TABLE + 8), 1, HI_TABLE + 8);
    const cl = v128.load64_lane(l1, v128.load64_zero(l0, LO_TABLE), 1, LO_TABLE);
    const sl = v128.load64_lane(l1, v128.load64_zero(l0, LO_TABLE + 8), 1, LO_TABLE + 8);
    const c = f64x2.sub(f64x2.mul(ch, cl), f64x2.mul(sh, sl));
    const s = f64x2.add(f64x2.mul(sh, cl), f64x2.mul(ch, sl));
    const za = f64x2.add(mv, f64x2.mul(sr, c));
    const zb = f64x2.add(mv, f64x2.mul(sr, s));
    // float32 of z ∓ dz, in output order (a0, b0, a1, b1)
    const lo = i32x4.shuffle(f32x4.demote_f64x2_zero(f64x2.sub(za, dz)), f32x4.demote_f64x2_zero(f64x2.sub(zb, dz)), 0, 4, 1, 5);
    const hi = i32x4.shuffle(f32x4.demote_f64x2_zero(f64x2.add(za, dz)), f32x4.demote_f64x2_zero(f64x2.add(zb, dz)), 0, 4, 1, 5);
    v128.store(out + ((j as usize) << 3), lo);
    const ok = i32x4.bitmask(v128.and(f32x4.eq(lo, hi), f32x4.ne(lo, v128.xor(lo, lo))));
    if (ok !== 15) {
      if ((ok & 3) !== 3) {
        store<i32>(fails + ((nf as usize) << 2), j);
        nf++;
      }
      if ((ok & 12) !== 12) {
        store<i32>(fails + ((nf as usize) << 2), j + 1);
        nf++;
      }
    }
  }
  return nf;
}

/** Test hook: r = √(−2 ln u1) and (cos, sin) of the fast path for word pair j at out + 24 j (3 float64). */
export function normalParts(words: usize, out: usize, nPairs: i32): void {
  // Same arithmetic as `normal`, one pair at a time.
  const logT = LOG_TABLE;
  for (let j = 0; j < nPairs; j++) {
    const m = load<u32>(words + ((j as usize) << 3)) >>> 8;
    const k = load<u32>(words + ((j as usize) << 3), 4) >>> 8;
    const v = (m + 1) as f64;
    const bits = reinterpret<u64>(v);
    const mant = bits & 0x000fffffffffffff;
    const ix = (mant + (1 << 43)) >> 44;
    const y = reinterpret<f64>(mant | 0x3ff0000000000000);
    const e = reinterpret<f64>((bits >> 52) | 0x4330000000000000) - 4503599627371543;
    const g = logT + ((ix as usize) << 4);
    const d = y * load<f64>(g) - 1;
    const d2 = d * d;
    const p = d * (1 + d * -0.5 + d2 * (1.0 / 3.0 + d * -0.25 + d2 * (0.2 + d * (-1.0 / 6.0))));
    const r = Math.sqrt(-2 * (e * LN2 + load<f64>(g, 8) + p));
    const hi = HI_TABLE + ((k >>> 12) << 4);
    const lo = LO_TABLE + ((k & 4095) << 4);
    const ch = load<f64>(hi);
    const sh = load<f64>(hi, 8);
    const cl = load<f64>(lo);
    const sl = load<f64>(lo, 8);
    const o = out + (j as usize) * 24;
    store<f64>(o, r);
    store<f64>(o, ch * cl - sh * sl, 8);
    store<f64>(o, sh * cl + ch * sl, 16);
  }
}
