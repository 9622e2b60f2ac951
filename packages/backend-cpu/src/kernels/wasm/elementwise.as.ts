// @ts-nocheck -- AssemblyScript source (compiled by scripts/build-wasm.mjs), not TypeScript.
//
// Elementwise kernels of a training step in WebAssembly SIMD (128-bit): GELU (exact and tanh) and
// SwiGLU's silu(gate)·up, forward and backward; binary add / sub / mul / div / max / min; affine.
// See kernels/elementwise-wasm.ts for how the host uses each export.
//
// Every kernel is a pure function of an element range [start, end) of the op: its float32 arrays
// (byte pointers into the module's own memory) hold the range's elements from their first byte,
// it reads the inputs of the range and writes its outputs, nothing else. A call can be split into
// ranges run in any order by any number of instances (each with its own memory and copy of the
// range); only a binary ROW operand depends on where the range starts. No allocation, no
// runtime, no data segments.
//
// The activations and affine compute in float64, two lanes at a time, with exactly the operations
// of kernels/activations.ts and kernels/math.ts (fastExp, erfPoly, erfcScaled) in the same order,
// then round once to float32. WebAssembly has no fused multiply-add outside relaxed SIMD (not
// enabled), so every double is the one the TypeScript computes and the float32 results are the
// same bits. fastExp's table 2^(j/32) is written by the host at address 0 from math.ts's own
// table, and its arguments outside (−708, 708) (or NaN) go to the host's Math.exp, as in
// fastExp. The binary ops compute in float32: for float32 inputs +, −, ×, ÷ rounded once to
// float32 equal the double result rounded to float32, and f32x4.max / min propagate NaN and order
// −0 < +0 like Math.max / Math.min.

/** Math.exp from the host (imported as "elementwise.as" "exp", the module named after this file). */
declare function exp(x: f64): f64;

/** 2^(j/32), j = 0..31, float64, written by the host (math.ts's table). */
const EXP_FRAC: usize = 0;

const LN2: f64 = Math.LN2;
const SQRT1_2: f64 = Math.SQRT1_2;
const INV_SQRT_2PI: f64 = 0.3989422804014327; // 1 / √(2π), as activations.ts computes it
const TANH_C: f64 = 0.7978845608028654; // √(2/π)
const TANH_A: f64 = 0.044715;

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
/** Bytes the host keeps for the table and the constants at address 0; its arrays start after. */
export const RESERVED_BYTES: usize = K_ZERO + 16;

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

/** out = gelu(x) over [start, end): exact (erf) or, with `tanh`, the tanh approximation. */
export function gelu(out: usize, x: usize, start: i32, end: i32, tanh: bool): void {
  const n = end - start;
  for (let i = 0; i < n; i += 2) {
    const two = i + 1 < n;
    const v = load2(x, i, two);
    store2(out, i, two, tanh ? geluTanh2(v) : geluExact2(v));
  }
}

/** dx = dy·gelu'(x) over [start, end). */
export function geluBackward(dx: usize, dy: usize, x: usize, start: i32, end: i32, tanh: bool): void {
  const n = end - start;
  for (let i = 0; i < n; i += 2) {
    const two = i + 1 < n;
    const g = load2(dy, i, two);
    const v = load2(x, i, two);
    store2(dx, i, two, tanh ? geluTanhBackward2(g, v) : geluExactBackward2(g, v));
  }
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

// ---- binary ops in float32 ----

export const ADD = 0;
export const SUB = 1;
export const MUL = 2;
export const DIV = 3;
export const MAX = 4;
export const MIN = 5;

/**
 * An operand's layout: element i of the range at a[i − start] (FLAT), a[i mod rowLen] (ROW), or
 * the value at a, repeated in 16 bytes (SCALAR: four copies, as f32x4.splat stores it).
 */
export const FLAT = 0;
export const ROW = 1;
export const SCALAR = 2;

/** a op b for one element. */
function op1(op: i32, a: f32, b: f32): f32 {
  switch (op) {
    case ADD:
      return a + b;
    case SUB:
      return a - b;
    case MUL:
      return a * b;
    case DIV:
      return a / b;
    case MAX:
      return max<f32>(a, b);
    default:
      return min<f32>(a, b);
  }
}

/**
 * o[j] = a[j] op b[j], j < n. An operand with mask 0 is a SCALAR (the same 16 bytes every step),
 * with mask −1 an array.
 */
function segment(op: i32, o: usize, a: usize, ma: usize, b: usize, mb: usize, n: i32): void {
  const end = (<usize>(n & ~3)) << 2;
  let p: usize = 0;
  switch (op) {
    case ADD:
      for (; p < end; p += 16) v128.store(o + p, f32x4.add(v128.load(a + (p & ma)), v128.load(b + (p & mb))));
      break;
    case SUB:
      for (; p < end; p += 16) v128.store(o + p, f32x4.sub(v128.load(a + (p & ma)), v128.load(b + (p & mb))));
      break;
    case MUL:
      for (; p < end; p += 16) v128.store(o + p, f32x4.mul(v128.load(a + (p & ma)), v128.load(b + (p & mb))));
      break;
    case DIV:
      for (; p < end; p += 16) v128.store(o + p, f32x4.div(v128.load(a + (p & ma)), v128.load(b + (p & mb))));
      break;
    case MAX:
      for (; p < end; p += 16) v128.store(o + p, f32x4.max(v128.load(a + (p & ma)), v128.load(b + (p & mb))));
      break;
    default:
      for (; p < end; p += 16) v128.store(o + p, f32x4.min(v128.load(a + (p & ma)), v128.load(b + (p & mb))));
  }
  for (let j = n & ~3; j < n; j++) {
    const q = (<usize>j) << 2;
    store<f32>(o + q, op1(op, load<f32>(a + (q & ma)), load<f32>(b + (q & mb))));
  }
}

/**
 * out = a op b over elements [start, end) of the op, rows of rowLen elements (any rowLen ≥ 1 when
 * no operand is ROW). out, and a FLAT operand, hold elements start..end−1 from their first byte;
 * a ROW operand holds one row (element i reads its entry i mod rowLen); a SCALAR operand, its
 * value four times.
 */
export function binary(op: i32, out: usize, a: usize, aMode: i32, b: usize, bMode: i32, rowLen: i32, start: i32, end: i32): void {
  const rows = aMode === ROW || bMode === ROW;
  const ma: usize = aMode === SCALAR ? 0 : -1;
  const mb: usize = bMode === SCALAR ? 0 : -1;
  let i = start;
  let col = rows ? start % rowLen : 0;
  while (i < end) {
    const n = rows ? min(rowLen - col, end - i) : end - i;
    const q = (<usize>(i - start)) << 2;
    const c = (<usize>col) << 2;
    segment(op, out + q, aMode === FLAT ? a + q : aMode === ROW ? a + c : a, ma, bMode === FLAT ? b + q : bMode === ROW ? b + c : b, mb, n);
    i += n;
    col = 0;
  }
}
