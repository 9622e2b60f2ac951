// @ts-nocheck -- AssemblyScript source (compiled by scripts/build-wasm.mjs), not TypeScript.
//
// Elementwise kernels of a training step in WebAssembly SIMD (128-bit): GELU (exact and tanh) and
// SwiGLU's silu(gate)·up, forward and backward; binary add / sub / mul / div / max / min; affine.
// See kernels/elementwise-wasm.ts for how the host uses each export.
//
// Every kernel is a pure function of an element range [start, end) of the op: its float32 arrays
// (byte pointers into the module's own memory) hold the range's elements from their first byte,
// it reads the inputs of the range and writes its outputs, nothing else (gelu and geluBackward go
// eight elements a step and may also read and write up to seven past the range's end, which the
// host's chunk slots have room for and does not copy out). A call can be split into
// ranges run in any order by any number of instances (each with its own memory and copy of the
// range); only a binary ROW operand depends on where the range starts. No allocation, no
// runtime, no data segments.
//
// GELU and its backward (exact and tanh) take x in (−4, 4) from tables of cubics, in float32
// lanes: each cell (1/128 of a binade of |x|, per sign, and one cell around 0) holds c0…c3 and y =
// c0 + u·(c1 + u·(c2 + u·c3)), u = x − xc (the cell's center); the module builds the tables when it
// starts (`buildTables` in gelu-tables.as.ts, double precision, exactly math.ts's `geluTables`) and computes exactly
// math.ts's `geluTableValue`, eight elements a step. A step with an element outside the tables'
// fast range (|x| < 2^−9, |x| ≥ 4, NaN) takes those from the cell around 0 or from the float64
// formulas below (`geluSlow`), as activations.ts does. The other activations and affine compute in
// float64, two lanes at a time, with exactly the operations of kernels/activations.ts and
// kernels/math.ts (fastExp, erfPoly, erfcScaled) in the same order, then round once to float32. WebAssembly has no fused multiply-add outside
// relaxed SIMD (not enabled), so every double (and every float32 of the table path) is the one the
// TypeScript computes and the float32 results are the same bits. fastExp's table 2^(j/32) is
// written by the host at address 0 from math.ts's own table, and its arguments outside (−708, 708)
// (or NaN) go to the host's Math.exp, as in fastExp; `buildTables` takes e^x from the host's
// Math.exp too, as math.ts does. The binary ops compute in float32: for float32 inputs +, −, ×, ÷
// rounded once to float32 equal the double result rounded to float32, and f32x4.max / min
// propagate NaN and order −0 < +0 like Math.max / Math.min.

import {
  BINADES,
  buildTables,
  CELL_SHIFT,
  EXP_LO,
  NEG_ROWS,
  ROW_BIAS,
  rowAddress,
  SCRATCH,
  TANH_A,
  TANH_C,
  TINY_ROW,
  TPOS,
  TTINY,
  tableBase,
} from './gelu-tables.as';

/** Math.exp from the host (imported as "elementwise.as" "exp", the module named after this file). */
declare function exp(x: f64): f64;

/** 2^(j/32), j = 0..31, float64, written by the host (math.ts's table). */
const EXP_FRAC: usize = 0;

const LN2: f64 = Math.LN2;
const SQRT1_2: f64 = Math.SQRT1_2;
const INV_SQRT_2PI: f64 = 0.3989422804014327; // 1 / √(2π), as activations.ts computes it

// Vector constants live in memory after the table, stored once when the module starts, and are
// loaded where used: V8 builds a v128.const from immediates at every use, which costs more.
const K: usize = 256;
const K_EXP_K: usize = K; // 32 / ln 2
const K_HALF: usize = K + 16;
const K_LN2_32_HI: usize = K + 32; // ln2/32 split in two; k·HI exact for |k| < 2^16
const K_LN2_32_LO: usize = K + 48;
const K_SIXTH: usize = K + 64;
const K_24TH: usize = K + 80;
const K_ONE: usize = K + 96;
const K_MAGIC: usize = K + 112; // 1.5·2^52: k + MAGIC holds k in its low bits
const K_EXP_MASK: usize = K + 128; // i64 exponent bits
const K_EXP_MAX: usize = K + 144; // 708: fastExp's fast range is |x| < 708
const K_ABS: usize = K + 160; // i64 all bits but the sign
const K_E0: usize = K + 176; // erfPoly: E0 … E12
const K_Q0: usize = K_E0 + 13 * 16; // erfcScaled: Q0 … Q11
const K_ERFC_P: usize = K_Q0 + 12 * 16;
const K_POLY_X: usize = K_ERFC_P + 16; // |x| below which GELU takes erf(x/√2) from erfPoly (2.2·√2)
const K_SQRT1_2: usize = K_POLY_X + 16;
const K_INV_SQRT_2PI: usize = K_SQRT1_2 + 16;
const K_TANH_C: usize = K_INV_SQRT_2PI + 16;
const K_TANH_A: usize = K_TANH_C + 16;
const K_M2_TANH_C: usize = K_TANH_A + 16; // −2·√(2/π)
const K_3_TANH_A: usize = K_M2_TANH_C + 16; // 3·0.044715
const K_M_HALF: usize = K_3_TANH_A + 16;
const K_TWO: usize = K_M_HALF + 16;
const K_INF: usize = K_TWO + 16;
const K_ZERO: usize = K_INF + 16;
// float32 / int32 lanes of the GELU tables
const K_F_ABS: usize = K_ZERO + 16; // i32 all bits but the sign
const K_F_TINY: usize = K_F_ABS + 16; // 2^EXP_LO: below, the cell around 0
const K_F_XMIN: usize = K_F_TINY + 16; // the tables cover XMIN < x < XMAX
const K_F_XMAX: usize = K_F_XMIN + 16;
const K_I_NEG: usize = K_F_XMAX + 16; // row offset of the negative cells
const K_I_BIAS: usize = K_I_NEG + 16; // row = (bits(|x|) >>> CELL_SHIFT) − ROW_BIAS
const K_I_TINY: usize = K_I_BIAS + 16; // row of the cell around 0
const K_I_CELL: usize = K_I_TINY + 16; // the sign, exponent and cell bits of x
const K_I_MID: usize = K_I_CELL + 16; // the bit below them: cell center = (bits & CELL) | MID
const K_F_HALF: usize = K_I_MID + 16;
const K_F_ONE: usize = K_F_HALF + 16;
const K_I_TINY_BITS: usize = K_F_ONE + 16; // bits(2^EXP_LO) − 1: |x| ≥ 2^EXP_LO as int32 bits
const K_M64: usize = K_I_TINY_BITS + 16; // f64: the slow path clamps x to [−64, 64]
const K_P64: usize = K_M64 + 16;
/** End of the constants: `buildTables`'s scratch (gelu-tables.as.ts) starts at or after it. */
const K_END: usize = K_P64 + 16;

/**
 * Bytes the host keeps for fastExp's table, the constants and the GELU tables at address 0; its
 * arrays start after. 2 KiB past a 4 KiB boundary: the host's chunk slots then start half a page
 * off the page-aligned chunks of large buffers, which keeps TypedArray.set's copies out of the
 * module from running at a fifth of their speed (loads 4 KiB apart from the stores just made).
 */
export const RESERVED_BYTES: usize = ((TTINY + 4 * 16 + 4095 - 2048) & ~4095) + 2048;

// The tables are laid out and built by gelu-tables.as.ts.
if (K_END > SCRATCH) unreachable();

/** Address of row `row` of table t (math.ts's numbering), for tests. */
export function geluRowAddress(t: i32, row: i32): usize {
  return rowAddress(t, row);
}

// The tables are past the memory's first page: grow it before anything is stored there.
if ((<usize>memory.size()) << 16 < RESERVED_BYTES) memory.grow(<i32>((RESERVED_BYTES + 0xffff) >> 16) - memory.size());

function k(at: usize): v128 {
  return v128.load(at);
}

function set(at: usize, x: f64): void {
  v128.store(at, f64x2.splat(x));
}

set(K_EXP_K, 32 / LN2);
set(K_HALF, 0.5);
set(K_LN2_32_HI, 0.693145751953125 / 32);
set(K_LN2_32_LO, (LN2 - 0.693145751953125) / 32);
set(K_SIXTH, 1.0 / 6.0);
set(K_24TH, 1.0 / 24.0);
set(K_ONE, 1);
set(K_MAGIC, 6755399441055744);
v128.store(K_EXP_MASK, i64x2.splat((<i64>-1) << 52));
set(K_EXP_MAX, 708);
v128.store(K_ABS, i64x2.splat(~((<i64>1) << 63)));
// erf(z) = z·P(z²) for |z| ≤ 2.2 (math.ts: erfPoly)
set(K_E0, 1.1283791668611325);
set(K_E0 + 16, -0.37612638300008894);
set(K_E0 + 32, 0.11283787061331076);
set(K_E0 + 48, -0.026866006310273992);
set(K_E0 + 64, 0.005223646484241292);
set(K_E0 + 80, -0.0008544144865442394);
set(K_E0 + 96, 0.00012020133461302854);
set(K_E0 + 112, -1.4720704377146313e-5);
set(K_E0 + 128, 1.561861594667398e-6);
set(K_E0 + 144, -1.3886868644493335e-7);
set(K_E0 + 160, 9.596306227548905e-9);
set(K_E0 + 176, -4.476992257068178e-10);
set(K_E0 + 192, 1.0312892146570634e-11);
// erfc(z)·e^(z²) = t·Q(t), t = 1/(1 + P·z) (math.ts: erfcScaled)
set(K_Q0, 0.20282615559197092);
set(K_Q0 + 16, 0.20282606561655142);
set(K_Q0 + 32, 0.18972410903208492);
set(K_Q0 + 48, 0.16340897412381722);
set(K_Q0 + 64, 0.1278244229808948);
set(K_Q0 + 80, 0.07700913279711938);
set(K_Q0 + 96, 0.07585708458532804);
set(K_Q0 + 112, -0.08104845078785283);
set(K_Q0 + 128, 0.16093277624770766);
set(K_Q0 + 144, -0.21009557841733761);
set(K_Q0 + 160, 0.11259268452824743);
set(K_Q0 + 176, -0.021857377452904482);
set(K_ERFC_P, 0.3595);
set(K_POLY_X, 2.2 * Math.SQRT2);
set(K_SQRT1_2, SQRT1_2);
set(K_INV_SQRT_2PI, INV_SQRT_2PI);
set(K_TANH_C, TANH_C);
set(K_TANH_A, TANH_A);
set(K_M2_TANH_C, -2 * TANH_C);
set(K_3_TANH_A, 3 * TANH_A);
set(K_M_HALF, -0.5);
set(K_TWO, 2);
set(K_INF, Infinity);
set(K_ZERO, 0);
v128.store(K_F_ABS, i32x4.splat(0x7fffffff));
v128.store(K_F_TINY, f32x4.splat(reinterpret<f32>((127 + EXP_LO) << 23)));
v128.store(K_F_XMIN, f32x4.splat(-reinterpret<f32>((127 + EXP_LO + BINADES) << 23)));
v128.store(K_F_XMAX, f32x4.splat(reinterpret<f32>((127 + EXP_LO + BINADES) << 23)));
v128.store(K_I_NEG, i32x4.splat(NEG_ROWS));
v128.store(K_I_BIAS, i32x4.splat(ROW_BIAS));
v128.store(K_I_TINY, i32x4.splat(TINY_ROW));
v128.store(K_I_CELL, i32x4.splat(-1 << CELL_SHIFT));
v128.store(K_I_MID, i32x4.splat(1 << (CELL_SHIFT - 1)));
v128.store(K_F_HALF, f32x4.splat(0.5));
v128.store(K_F_ONE, f32x4.splat(1));
v128.store(K_I_TINY_BITS, i32x4.splat(((127 + EXP_LO) << 23) - 1));
set(K_M64, -64);
set(K_P64, 64);

buildTables();

/**
 * fastExp of each lane for |x| < 708 (`fast`; `expOutside` for the others): x = (k/32)·ln 2 + r,
 * e^x = 2^(k>>5) · 2^((k&31)/32) · e^r. There p·2^((k&31)/32) and the result are normal doubles,
 * so multiplying by 2^(k>>5) (as fastExp does) is adding k>>5 to the exponent bits, which this does.
 */
function exp2(x: v128): v128 {
  const kf = f64x2.floor(f64x2.add(f64x2.mul(x, k(K_EXP_K)), k(K_HALF)));
  const r = f64x2.sub(f64x2.sub(x, f64x2.mul(kf, k(K_LN2_32_HI))), f64x2.mul(kf, k(K_LN2_32_LO)));
  const r2 = f64x2.mul(r, r);
  const q = f64x2.add(f64x2.add(k(K_HALF), f64x2.mul(r, k(K_SIXTH))), f64x2.mul(r2, k(K_24TH)));
  const p = f64x2.add(f64x2.add(k(K_ONE), r), f64x2.mul(r2, q));
  // kb's 64-bit lanes hold 1.5·2^52 + k: k in the low 32 bits, and kb << 47 is k << 47
  const kb = f64x2.add(kf, k(K_MAGIC));
  const frac = v128.load64_lane(
    EXP_FRAC + ((<usize>(i32x4.extract_lane(kb, 2) & 31)) << 3),
    v128.load64_zero(EXP_FRAC + ((<usize>(i32x4.extract_lane(kb, 0) & 31)) << 3)),
    1,
  );
  return i64x2.add(f64x2.mul(p, frac), v128.and(i64x2.shl(kb, 47), k(K_EXP_MASK)));
}

/** Whether every lane has |x| < 708, where exp2 is fastExp. */
function fast(x: v128): bool {
  return i64x2.bitmask(f64x2.lt(v128.and(x, k(K_ABS)), k(K_EXP_MAX))) === 3;
}

/** y = exp2(x) with Math.exp in the lanes of x outside (−708, 708) or NaN, as fastExp does. */
function expOutside(x: v128, y: v128): v128 {
  const ok = f64x2.lt(v128.and(x, k(K_ABS)), k(K_EXP_MAX));
  if (!i64x2.extract_lane(ok, 0)) y = f64x2.replace_lane(y, 0, exp(f64x2.extract_lane(x, 0)));
  if (!i64x2.extract_lane(ok, 1)) y = f64x2.replace_lane(y, 1, exp(f64x2.extract_lane(x, 1)));
  return y;
}

// fastExp of a lane pair x is `fast(x) ? exp2(x) : expOutside(x, exp2(x))`, written out where it
// is used so that each use is inlined with its cold call.

function e(i: usize): v128 {
  return v128.load(K_E0 + (i << 4));
}

function q(i: usize): v128 {
  return v128.load(K_Q0 + (i << 4));
}

/** erfPoly of each lane (Estrin's scheme, math.ts's order). */
function erfPoly2(z: v128): v128 {
  const s = f64x2.mul(z, z);
  const s2 = f64x2.mul(s, s);
  const s4 = f64x2.mul(s2, s2);
  const a = f64x2.add(f64x2.add(e(0), f64x2.mul(s, e(1))), f64x2.mul(s2, f64x2.add(e(2), f64x2.mul(s, e(3)))));
  const b = f64x2.add(f64x2.add(e(4), f64x2.mul(s, e(5))), f64x2.mul(s2, f64x2.add(e(6), f64x2.mul(s, e(7)))));
  const c = f64x2.add(f64x2.add(e(8), f64x2.mul(s, e(9))), f64x2.mul(s2, f64x2.add(e(10), f64x2.mul(s, e(11)))));
  const h = f64x2.add(f64x2.add(a, f64x2.mul(s4, b)), f64x2.mul(f64x2.mul(s4, s4), f64x2.add(c, f64x2.mul(s4, e(12)))));
  return f64x2.mul(z, h);
}

/** erfcScaled of each lane (z ≥ 0). */
function erfcScaled2(z: v128): v128 {
  const t = f64x2.div(k(K_ONE), f64x2.add(k(K_ONE), f64x2.mul(k(K_ERFC_P), z)));
  const t2 = f64x2.mul(t, t);
  const t4 = f64x2.mul(t2, t2);
  const a = f64x2.add(f64x2.add(q(0), f64x2.mul(t, q(1))), f64x2.mul(t2, f64x2.add(q(2), f64x2.mul(t, q(3)))));
  const b = f64x2.add(f64x2.add(q(4), f64x2.mul(t, q(5))), f64x2.mul(t2, f64x2.add(q(6), f64x2.mul(t, q(7)))));
  const c = f64x2.add(f64x2.add(q(8), f64x2.mul(t, q(9))), f64x2.mul(t2, f64x2.add(q(10), f64x2.mul(t, q(11)))));
  return f64x2.mul(t, f64x2.add(f64x2.add(a, f64x2.mul(t4, b)), f64x2.mul(f64x2.mul(t4, t4), c)));
}

/** Lanes with −POLY_X < v < POLY_X: all ones; the others (NaN included): 0. */
function inPoly(v: v128): v128 {
  return f64x2.lt(v128.and(v, k(K_ABS)), k(K_POLY_X));
}

/** x·Φ(x) (activations.ts: geluExact, geluTail). */
function geluExact2(v: v128): v128 {
  const poly = inPoly(v);
  const y = f64x2.mul(f64x2.mul(k(K_HALF), v), f64x2.add(k(K_ONE), erfPoly2(f64x2.mul(v, k(K_SQRT1_2)))));
  return i64x2.bitmask(poly) === 3 ? y : geluTail2(v, y, poly);
}

/** geluExact2 where a lane is outside the polynomial's range: through erfc(|x|/√2). */
function geluTail2(v: v128, y: v128, poly: v128): v128 {
  const z = f64x2.mul(v128.and(v, k(K_ABS)), k(K_SQRT1_2));
  const arg = f64x2.mul(f64x2.neg(z), z);
  let ex = exp2(arg);
  if (!fast(arg)) ex = expOutside(arg, ex);
  const c = f64x2.mul(erfcScaled2(z), ex);
  const pos = f64x2.mul(v, f64x2.sub(k(K_ONE), f64x2.mul(k(K_HALF), c)));
  const neg = f64x2.mul(f64x2.mul(k(K_HALF), v), c);
  return v128.bitselect(y, v128.bitselect(pos, neg, f64x2.ge(v, k(K_ZERO))), poly);
}

/** x / (1 + e^(−2u)), u = √(2/π)·(x + 0.044715·x³) (activations.ts: geluTanh). */
function geluTanh2(v: v128): v128 {
  const cube = f64x2.mul(f64x2.mul(f64x2.mul(k(K_TANH_A), v), v), v);
  const arg = f64x2.mul(k(K_M2_TANH_C), f64x2.add(v, cube));
  let ex = exp2(arg);
  if (!fast(arg)) ex = expOutside(arg, ex);
  return f64x2.div(v, f64x2.add(k(K_ONE), ex));
}

/** dy·(Φ(x) + x·φ(x)) (activations.ts: geluExactBackward). */
function geluExactBackward2(g: v128, v: v128): v128 {
  const arg = f64x2.mul(f64x2.mul(k(K_M_HALF), v), v);
  let ex = exp2(arg);
  if (!fast(arg)) ex = expOutside(arg, ex);
  const poly = inPoly(v);
  let cdf = f64x2.mul(k(K_HALF), f64x2.add(k(K_ONE), erfPoly2(f64x2.mul(v, k(K_SQRT1_2)))));
  if (i64x2.bitmask(poly) !== 3) cdf = cdfTail2(v, ex, cdf, poly);
  return f64x2.mul(g, f64x2.add(cdf, f64x2.mul(f64x2.mul(v, k(K_INV_SQRT_2PI)), ex)));
}

/** Φ(x) where a lane is outside the polynomial's range, given e^(−x²/2) (activations.ts: cdfTail). */
function cdfTail2(v: v128, ex: v128, cdf: v128, poly: v128): v128 {
  const c = f64x2.mul(erfcScaled2(f64x2.mul(v128.and(v, k(K_ABS)), k(K_SQRT1_2))), ex);
  const tail = v128.bitselect(f64x2.sub(k(K_ONE), f64x2.mul(k(K_HALF), c)), f64x2.mul(k(K_HALF), c), f64x2.ge(v, k(K_ZERO)));
  return v128.bitselect(cdf, tail, poly);
}

/** activations.ts: geluTanhBackward. */
function geluTanhBackward2(g: v128, v: v128): v128 {
  const v2 = f64x2.mul(v, v);
  const arg = f64x2.mul(k(K_M2_TANH_C), f64x2.add(v, f64x2.mul(f64x2.mul(k(K_TANH_A), v2), v)));
  let ex = exp2(arg);
  if (!fast(arg)) ex = expOutside(arg, ex);
  const s = f64x2.div(k(K_ONE), f64x2.add(k(K_ONE), ex));
  const es = v128.bitselect(k(K_ONE), f64x2.mul(ex, s), f64x2.eq(ex, k(K_INF)));
  const d = f64x2.mul(
    f64x2.mul(f64x2.mul(f64x2.mul(f64x2.mul(k(K_TWO), v), s), es), k(K_TANH_C)),
    f64x2.add(k(K_ONE), f64x2.mul(k(K_3_TANH_A), v2)),
  );
  return f64x2.mul(g, f64x2.add(s, d));
}

/** silu(gate)·up = gate / (1 + e^(−gate)) · up. */
function siluMul2(v: v128, u: v128): v128 {
  const arg = f64x2.neg(v);
  let ex = exp2(arg);
  if (!fast(arg)) ex = expOutside(arg, ex);
  return f64x2.mul(f64x2.div(v, f64x2.add(k(K_ONE), ex)), u);
}

// ---- the kernels: two float32 elements per step (one float64x2), the last alone when odd ----

/** Elements i, i + 1 of a float32 array as float64 lanes (i + 1 only where `two`). */
function load2(p: usize, i: i32, two: bool): v128 {
  const at = p + ((<usize>i) << 2);
  return f64x2.promote_low_f32x4(two ? v128.load64_zero(at) : v128.load32_zero(at));
}

/** Stores the float64 lanes as float32 elements i, i + 1 (i + 1 only where `two`). */
function store2(p: usize, i: i32, two: bool, y: v128): void {
  const at = p + ((<usize>i) << 2);
  const f = f32x4.demote_f64x2_zero(y);
  if (two) v128.store64_lane(at, f, 0);
  else v128.store32_lane(at, f, 0);
}

// ---- GELU: four float32 elements per step from the tables, the float64 formulas outside them ----

/** Lanes with XMIN < x < XMAX (the tables' range): all ones; the others (NaN included): 0. */
function inTable(v: v128): v128 {
  return v128.and(f32x4.gt(v, k(K_F_XMIN)), f32x4.lt(v, k(K_F_XMAX)));
}

/**
 * The table value of each lane of v (all in the tables' range, the cell around 0 included), table
 * t; `forward`: gelu, whose cell around 0 takes c0 = x/2 (math.ts: geluTableValue).
 */
function tableEval(v: v128, t: i32, forward: bool): v128 {
  const tb = tableBase(t);
  const tiny = f32x4.lt(v128.and(v, k(K_F_ABS)), k(K_F_TINY));
  const off = v128.bitselect(i32x4.splat(<i32>(TTINY + 16 * <usize>t - tb)), i32x4.shl(i32x4.shr_u(v, CELL_SHIFT), 4), tiny);
  const r0 = v128.load(tb + <usize>i32x4.extract_lane(off, 0));
  const r1 = v128.load(tb + <usize>i32x4.extract_lane(off, 1));
  const r2 = v128.load(tb + <usize>i32x4.extract_lane(off, 2));
  const r3 = v128.load(tb + <usize>i32x4.extract_lane(off, 3));
  const t0 = i32x4.shuffle(r0, r1, 0, 4, 1, 5);
  const t1 = i32x4.shuffle(r2, r3, 0, 4, 1, 5);
  const t2 = i32x4.shuffle(r0, r1, 2, 6, 3, 7);
  const t3 = i32x4.shuffle(r2, r3, 2, 6, 3, 7);
  let c0 = i64x2.shuffle(t0, t1, 0, 2);
  const c1 = i64x2.shuffle(t0, t1, 1, 3);
  const c2 = i64x2.shuffle(t2, t3, 0, 2);
  const c3 = i64x2.shuffle(t2, t3, 1, 3);
  if (forward) c0 = v128.bitselect(f32x4.mul(v, k(K_F_HALF)), c0, tiny);
  // xc = 0 around 0
  const u = f32x4.sub(v, v128.andnot(v128.or(v128.and(v, k(K_I_CELL)), k(K_I_MID)), tiny));
  return f32x4.add(c0, f32x4.mul(u, f32x4.add(c1, f32x4.mul(u, f32x4.add(c2, f32x4.mul(u, c3))))));
}

/** Lanes 2, 3 of a float32 vector as float64 lanes. */
function promoteHigh(v: v128): v128 {
  return f64x2.promote_low_f32x4(i64x2.shuffle(v, v, 1, 1));
}

/** Two float64 vectors (lanes 0, 1 and 2, 3) rounded to one float32 vector. */
function demote4(lo: v128, hi: v128): v128 {
  return i64x2.shuffle(f32x4.demote_f64x2_zero(lo), f32x4.demote_f64x2_zero(hi), 0, 2);
}

/** gelu of x ≤ −64 (−∞ included) is that of −64, which rounds to −0 like the exact value. */
function geluSlow2(v: v128, tanh: bool): v128 {
  const w = f64x2.max(v, k(K_M64));
  return tanh ? geluTanh2(w) : geluExact2(w);
}

/**
 * Four elements of which one is not in the tables' fast range (activations.ts: the gelu loops):
 * the tables for those in (XMIN, XMAX), the float64 formulas for the others.
 */
function geluSlow(v: v128, tanh: bool): v128 {
  const ok = inTable(v);
  if (i32x4.all_true(ok)) return tableEval(v, tanh ? 1 : 0, true); // a lane around 0, none outside
  const t = tableEval(v128.bitselect(v, k(K_F_ONE), ok), tanh ? 1 : 0, true);
  const y = demote4(geluSlow2(f64x2.promote_low_f32x4(v), tanh), geluSlow2(promoteHigh(v), tanh));
  return v128.bitselect(t, y, ok);
}

/** dy·gelu'(x) for x clamped to [−64, 64], where gelu' is 0 or 1 (±∞ included). */
function geluBackwardSlow2(g: v128, v: v128, tanh: bool): v128 {
  const w = f64x2.min(f64x2.max(v, k(K_M64)), k(K_P64));
  return tanh ? geluTanhBackward2(g, w) : geluExactBackward2(g, w);
}

/** geluSlow's backward (activations.ts: the geluBackward loops). */
function geluBackwardSlow(g: v128, v: v128, tanh: bool): v128 {
  const ok = inTable(v);
  const t = f32x4.mul(g, tableEval(v128.bitselect(v, k(K_F_ONE), ok), tanh ? 3 : 2, false));
  if (i32x4.all_true(ok)) return t;
  const lo = geluBackwardSlow2(f64x2.promote_low_f32x4(g), f64x2.promote_low_f32x4(v), tanh);
  const hi = geluBackwardSlow2(promoteHigh(g), promoteHigh(v), tanh);
  return v128.bitselect(t, demote4(lo, hi), ok);
}

// The fast steps, compiled once per table: T is f64 for the tanh form, f32 for the exact one; B is
// i64 for geluBackward, i32 for gelu. Each instance has one caller, so it is inlined into its loop.

/** Base of the rows of the table of <T, B> (tableBase(2·backward + tanh)), a compile-time constant. */
const TB0: usize = TPOS - 16 * <usize>ROW_BIAS;
const TB1: usize = TB0 + 16 * <usize>NEG_ROWS;
const TB2: usize = TB1 + 16 * <usize>NEG_ROWS;
const TB3: usize = TB2 + 16 * <usize>NEG_ROWS;

/**
 * Whether the eight elements v, w are all in the tables but for the cell around 0 (2^EXP_LO ≤ |x|
 * < XMAX): then `tableStep` stores their results (times dy's for geluBackward).
 */
function fastStep(v: v128, w: v128, cabs: v128, ctiny: v128, cmax: v128): bool {
  // |x| as int32 bits (NaN's above +∞'s): the two vectors' smallest and largest compared at once
  const a = v128.and(v, cabs);
  const b = v128.and(w, cabs);
  return i32x4.all_true(v128.and(i32x4.gt_s(i32x4.min_s(a, b), ctiny), i32x4.lt_s(i32x4.max_s(a, b), cmax)));
}

/**
 * The table values of the eight elements v, w at xp (math.ts: geluTableValue), times those at gp
 * for geluBackward, stored at op. Each lane's row is 16·(the high half of its bits) past the
 * table's base (CELL_SHIFT is 16), the half read as a scalar (cheaper than extracting lanes) and
 * the base a constant offset of the loads; the rows (c0, c1, c2, c3) of four lanes are transposed
 * into c_j = (r0[j], r1[j], r2[j], r3[j]); then c0 + u·(c1 + u·(c2 + u·c3)), u = x − xc exact (xc:
 * x's sign, exponent and cell bits, then 1000…). Two independent steps of four, written out (no
 * inlining outside single callers).
 */
function tableStep<T, B>(op: usize, xp: usize, gp: usize, v: v128, w: v128, ccell: v128, cmid: v128): void {
  const tb: usize = sizeof<B>() === 8 ? (sizeof<T>() === 8 ? TB3 : TB2) : sizeof<T>() === 8 ? TB1 : TB0;
  const a0 = v128.load((<usize>load<u16>(xp, 2)) << 4, tb);
  const a1 = v128.load((<usize>load<u16>(xp, 6)) << 4, tb);
  const a2 = v128.load((<usize>load<u16>(xp, 10)) << 4, tb);
  const a3 = v128.load((<usize>load<u16>(xp, 14)) << 4, tb);
  const b0 = v128.load((<usize>load<u16>(xp, 18)) << 4, tb);
  const b1 = v128.load((<usize>load<u16>(xp, 22)) << 4, tb);
  const b2 = v128.load((<usize>load<u16>(xp, 26)) << 4, tb);
  const b3 = v128.load((<usize>load<u16>(xp, 30)) << 4, tb);
  const s0 = i32x4.shuffle(a0, a1, 0, 4, 1, 5);
  const s1 = i32x4.shuffle(a2, a3, 0, 4, 1, 5);
  const s2 = i32x4.shuffle(a0, a1, 2, 6, 3, 7);
  const s3 = i32x4.shuffle(a2, a3, 2, 6, 3, 7);
  const u = f32x4.sub(v, v128.or(v128.and(v, ccell), cmid));
  let y = f32x4.mul(u, f32x4.add(i64x2.shuffle(s2, s3, 0, 2), f32x4.mul(u, i64x2.shuffle(s2, s3, 1, 3))));
  y = f32x4.add(i64x2.shuffle(s0, s1, 0, 2), f32x4.mul(u, f32x4.add(i64x2.shuffle(s0, s1, 1, 3), y)));
  const q0 = i32x4.shuffle(b0, b1, 0, 4, 1, 5);
  const q1 = i32x4.shuffle(b2, b3, 0, 4, 1, 5);
  const q2 = i32x4.shuffle(b0, b1, 2, 6, 3, 7);
  const q3 = i32x4.shuffle(b2, b3, 2, 6, 3, 7);
  const t = f32x4.sub(w, v128.or(v128.and(w, ccell), cmid));
  let z = f32x4.mul(t, f32x4.add(i64x2.shuffle(q2, q3, 0, 2), f32x4.mul(t, i64x2.shuffle(q2, q3, 1, 3))));
  z = f32x4.add(i64x2.shuffle(q0, q1, 0, 2), f32x4.mul(t, f32x4.add(i64x2.shuffle(q0, q1, 1, 3), z)));
  if (sizeof<B>() === 8) {
    y = f32x4.mul(v128.load(gp), y);
    z = f32x4.mul(v128.load(gp, 16), z);
  }
  v128.store(op, y);
  v128.store(op, z, 16);
}

/** gelu over `bytes` of x (T: see tableStep). */
function geluSteps<T>(out: usize, x: usize, bytes: usize): void {
  const tanh = sizeof<T>() === 8;
  const cabs = k(K_F_ABS);
  const ctiny = k(K_I_TINY_BITS);
  const cmax = k(K_F_XMAX);
  const ccell = k(K_I_CELL);
  const cmid = k(K_I_MID);
  for (let p: usize = 0; p < bytes; p += 32) {
    const v = v128.load(x + p);
    const w = v128.load(x + p, 16);
    if (fastStep(v, w, cabs, ctiny, cmax)) {
      tableStep<T, i32>(out + p, x + p, 0, v, w, ccell, cmid);
    } else {
      v128.store(out + p, geluSlow(v, tanh));
      v128.store(out + p, geluSlow(w, tanh), 16);
    }
  }
}

/**
 * out = gelu(x) over [start, end): exact (erf) or, with `tanh`, the tanh approximation. Eight
 * elements a step: the last step may read and write up to seven elements past `end` (the host's
 * chunk slots, a multiple of 8 elements, have room; those lanes are not copied out, and no lane's
 * result depends on another's).
 */
export function gelu(out: usize, x: usize, start: i32, end: i32, tanh: bool): void {
  const bytes = (<usize>(end - start)) << 2;
  if (tanh) geluSteps<f64>(out, x, bytes);
  else geluSteps<f32>(out, x, bytes);
}

/** geluBackward over `bytes` (T: see tableStep). */
function geluBackwardSteps<T>(dx: usize, dy: usize, x: usize, bytes: usize): void {
  const tanh = sizeof<T>() === 8;
  const cabs = k(K_F_ABS);
  const ctiny = k(K_I_TINY_BITS);
  const cmax = k(K_F_XMAX);
  const ccell = k(K_I_CELL);
  const cmid = k(K_I_MID);
  for (let p: usize = 0; p < bytes; p += 32) {
    const v = v128.load(x + p);
    const w = v128.load(x + p, 16);
    if (fastStep(v, w, cabs, ctiny, cmax)) {
      tableStep<T, i64>(dx + p, x + p, dy + p, v, w, ccell, cmid);
    } else {
      v128.store(dx + p, geluBackwardSlow(v128.load(dy + p), v, tanh));
      v128.store(dx + p, geluBackwardSlow(v128.load(dy + p, 16), w, tanh), 16);
    }
  }
}

/** dx = dy·gelu'(x) over [start, end), eight elements a step like `gelu`. */
export function geluBackward(dx: usize, dy: usize, x: usize, start: i32, end: i32, tanh: bool): void {
  const bytes = (<usize>(end - start)) << 2;
  if (tanh) geluBackwardSteps<f64>(dx, dy, x, bytes);
  else geluBackwardSteps<f32>(dx, dy, x, bytes);
}

/** out = silu(gate)·up over [start, end). */
export function siluMul(out: usize, gate: usize, up: usize, start: i32, end: i32): void {
  const n = end - start;
  for (let i = 0; i < n; i += 2) {
    const two = i + 1 < n;
    store2(out, i, two, siluMul2(load2(gate, i, two), load2(up, i, two)));
  }
}

/** sigmoid of each lane: 1 / (1 + e^(−v)). */
function sigmoid2(v: v128): v128 {
  const arg = f64x2.neg(v);
  let ex = exp2(arg);
  if (!fast(arg)) ex = expOutside(arg, ex);
  return f64x2.div(k(K_ONE), f64x2.add(k(K_ONE), ex));
}

/** dGate = dy·u·s·(1 + v·(1 − s)) and dUp = dy·v·s, s = sigmoid(v), over [start, end) (activations.ts: siluMulBackward). */
export function siluMulBackward(dGate: usize, dUp: usize, dy: usize, gate: usize, up: usize, start: i32, end: i32): void {
  const n = end - start;
  for (let i = 0; i < n; i += 2) {
    const two = i + 1 < n;
    const g = load2(dy, i, two);
    const v = load2(gate, i, two);
    const u = load2(up, i, two);
    const s = sigmoid2(v);
    store2(dUp, i, two, f64x2.mul(f64x2.mul(g, v), s));
    store2(dGate, i, two, f64x2.mul(f64x2.mul(f64x2.mul(g, u), s), f64x2.add(k(K_ONE), f64x2.mul(v, f64x2.sub(k(K_ONE), s)))));
  }
}

/** out = x·alpha + beta over [start, end), in float64. */
export function affine(out: usize, x: usize, alpha: f64, beta: f64, start: i32, end: i32): void {
  const a = f64x2.splat(alpha);
  const b = f64x2.splat(beta);
  const n = end - start;
  for (let i = 0; i < n; i += 2) {
    const two = i + 1 < n;
    store2(out, i, two, f64x2.add(f64x2.mul(load2(x, i, two), a), b));
  }
}

// ---- binary ops in float32: binary.as.ts ----

export { ADD, binary, DIV, FLAT, MAX, MIN, MUL, ROW, SCALAR, SUB } from './binary.as';
