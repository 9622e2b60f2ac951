/**
 * exp, erf and erfc for the float32 kernels: double-precision arithmetic, several times faster
 * than Math.exp and a series erf, and accurate well beyond what a float32 result can show.
 * Polynomials are evaluated by Estrin's scheme (independent sub-products) rather than Horner's
 * chain, which roughly halves their latency. Then erf and Φ to double precision, and the GELU
 * tables built from them (`geluTables`, `geluTableValue`: gelu and geluBackward of |x| < 4 as one
 * float32 cubic per cell).
 */

const EXP_K = 32 / Math.LN2;
// ln2/32 split in two: k·LN2_32_HI is exact for every |k| < 2^16 (LN2_32_HI has 16 significant bits).
const LN2_32_HI = 0.693145751953125 / 32;
const LN2_32_LO = (Math.LN2 - 0.693145751953125) / 32;
/** 2^(j/32), j = 0..31 (also the table of the WebAssembly kernels' fastExp). */
export const EXP_FRAC = Float64Array.from({ length: 32 }, (_, j) => 2 ** (j / 32));
/** 2^i, i = -1023..1022. */
const EXP_INT = Float64Array.from({ length: 2046 }, (_, i) => 2 ** (i - 1023));

/**
 * e^x with relative error below 2e-12 (Math.exp beyond ±708, where the result is not a normal
 * double). x = (k/32)·ln 2 + r with |r| ≤ ln2/64: e^x = 2^(k>>5) · 2^((k&31)/32) · e^r, e^r by its
 * Taylor polynomial of degree 4 (remainder below r⁵/120 < 1.3e-12).
 */
export function fastExp(x: number): number {
  if (!(x > -708 && x < 708)) return Math.exp(x);
  const k = Math.floor(x * EXP_K + 0.5);
  const r = x - k * LN2_32_HI - k * LN2_32_LO;
  const r2 = r * r;
  const p = 1 + r + r2 * (0.5 + r * (1 / 6) + r2 * (1 / 24));
  return p * EXP_FRAC[k & 31] * EXP_INT[(k >> 5) + 1023];
}

// erf(z) = z·P(z²) for |z| ≤ ERF_POLY_MAX: P of degree 12, a weighted least-squares fit at Chebyshev
// nodes in z²; absolute error below 2e-11 and relative error below 3e-10 on the whole interval.
export const ERF_POLY_MAX = 2.2;
const E0 = 1.1283791668611325;
const E1 = -0.37612638300008894;
const E2 = 0.11283787061331076;
const E3 = -0.026866006310273992;
const E4 = 0.005223646484241292;
const E5 = -0.0008544144865442394;
const E6 = 0.00012020133461302854;
const E7 = -1.4720704377146313e-5;
const E8 = 1.561861594667398e-6;
const E9 = -1.3886868644493335e-7;
const E10 = 9.596306227548905e-9;
const E11 = -4.476992257068178e-10;
const E12 = 1.0312892146570634e-11;

/** erf(z) for |z| ≤ ERF_POLY_MAX (see above); meaningless beyond. */
export function erfPoly(z: number): number {
  const s = z * z;
  const s2 = s * s;
  const s4 = s2 * s2;
  const a = E0 + s * E1 + s2 * (E2 + s * E3);
  const b = E4 + s * E5 + s2 * (E6 + s * E7);
  const c = E8 + s * E9 + s2 * (E10 + s * E11);
  return z * (a + s4 * b + s4 * s4 * (c + s4 * E12));
}

// erfc(z) = t·Q(t)·e^(−z²) with t = 1/(1 + P·z), z ≥ 0. Q is a degree-11 polynomial in t ∈ (0, 1],
// the Chebyshev interpolant of erfcx(z)/t (erfcx(z) = e^(z²)·erfc(z)) with P chosen to make its
// error smallest: the relative error of erfc is below 1.6e-9 for every z ≥ 0 where e^(−z²) is a
// normal double (z < 26.5; beyond, erfc is far below the smallest float32).
const ERFC_P = 0.3595;
const Q0 = 0.20282615559197092;
const Q1 = 0.20282606561655142;
const Q2 = 0.18972410903208492;
const Q3 = 0.16340897412381722;
const Q4 = 0.1278244229808948;
const Q5 = 0.07700913279711938;
const Q6 = 0.07585708458532804;
const Q7 = -0.08104845078785283;
const Q8 = 0.16093277624770766;
const Q9 = -0.21009557841733761;
const Q10 = 0.11259268452824743;
const Q11 = -0.021857377452904482;

/** erfc(z)·e^(z²) for z ≥ 0 (relative error below 1.6e-9); multiply by e^(−z²) for erfc. */
export function erfcScaled(z: number): number {
  const t = 1 / (1 + ERFC_P * z);
  const t2 = t * t;
  const t4 = t2 * t2;
  const a = Q0 + t * Q1 + t2 * (Q2 + t * Q3);
  const b = Q4 + t * Q5 + t2 * (Q6 + t * Q7);
  const c = Q8 + t * Q9 + t2 * (Q10 + t * Q11);
  return t * (a + t4 * b + t4 * t4 * c);
}

/** erfc(x): relative error below 1.7e-9 for x ≥ 0, absolute error below 4e-9 for x < 0. */
export function fastErfc(x: number): number {
  if (x >= 0) return erfcScaled(x) * fastExp(-x * x);
  return 2 - erfcScaled(-x) * fastExp(-x * x);
}

/** erf(x): absolute error below 2e-11 for |x| ≤ 2.2 (relative below 3e-10), below 5e-12 beyond. */
export function fastErf(x: number): number {
  if (x > -ERF_POLY_MAX && x < ERF_POLY_MAX) return erfPoly(x);
  if (x >= 0) return 1 - erfcScaled(x) * fastExp(-x * x);
  return erfcScaled(-x) * fastExp(-x * x) - 1;
}

// ---- erf and Φ in double precision (the references the GELU tables are built from) ----

/**
 * Error function in double precision (about 1e-15). |x| < 3: erf(x) = 2/√π · e^(−x²) · Σ_n 2ⁿ
 * x^(2n+1) / (1·3·…·(2n+1)), whose terms are all positive (no cancellation). |x| ≥ 3: erf = 1 −
 * erfc with erfc from its continued fraction.
 */
export function erf(x: number): number {
  if (Number.isNaN(x)) return x;
  const ax = Math.abs(x);
  if (ax >= 3) {
    const r = 1 - erfcLarge(ax);
    return x < 0 ? -r : r;
  }
  const x2 = x * x;
  let term = x;
  let sum = x;
  for (let n = 1; n < 200; n++) {
    term *= (2 * x2) / (2 * n + 1);
    sum += term;
    if (Math.abs(term) < 1e-17 * Math.abs(sum)) break;
  }
  return (2 / Math.sqrt(Math.PI)) * Math.exp(-x2) * sum;
}

/** erfc(x) for x ≥ 2: e^(−x²)/√π · 1/(x + (1/2)/(x + 1/(x + (3/2)/(x + …)))), by modified Lentz. */
function erfcLarge(x: number): number {
  if (x > 27) return 0;
  const tiny = 1e-300;
  let f = x;
  let c = x;
  let d = 0;
  for (let n = 1; n < 500; n++) {
    const a = n / 2;
    d = x + a * d;
    d = d === 0 ? tiny : d;
    c = x + a / c;
    c = c === 0 ? tiny : c;
    d = 1 / d;
    const delta = c * d;
    f *= delta;
    if (Math.abs(delta - 1) < 1e-16) break;
  }
  return Math.exp(-x * x) / (Math.sqrt(Math.PI) * f);
}

/** Φ(x), the standard normal CDF, in double precision: relative error below 1e-13, far into the negative tail. */
export function normalCdf(x: number): number {
  const z = x * Math.SQRT1_2;
  // 1 + erf(z) loses at most 8 bits for z > −2; the continued fraction converges fast beyond
  if (z > -2) return 0.5 * (1 + erf(z));
  return 0.5 * erfcLarge(-z);
}

// ---- GELU tables ----
//
// gelu and geluBackward (exact and tanh) of a float32 x in (−4, 4) are one cubic per cell of a
// table: y = c0 + u·(c1 + u·(c2 + u·c3)) in float32 arithmetic, u = x − xc exact, xc the cell's
// center. A cell is 1/128 of a binade [2^e, 2^(e+1)) of |x|, e = −9 … 1, per sign (the top 7
// mantissa bits of x pick it; xc is x with the mantissa bits below them set to 1000…), and one cell
// around 0 takes |x| < 2^−9 (xc = 0; gelu's c0 = x/2 there, from x, for the relative accuracy and
// the sign of a zero). The cubic is the Chebyshev economization over the cell of the function's
// Taylor series at xc (order 6, in double precision): its error is below 1e-8 relative, far below
// the float32 rounding of c0 and of the final sum, so a result is within 1.5 float32 ulp of the
// exact value (about 0.07 ulp on average), geluBackward within 2e-10 absolute around its zero.
// Outside (x ≤ −4, x ≥ 4, NaN) the kernels take the double-precision formulas of activations.ts.

/** Cells per binade: 2^GELU_CELL_BITS. */
export const GELU_CELL_BITS = 7;
/** Lowest binade of the table: |x| ≥ 2^GELU_EXP_LO; below, the cell around 0. */
export const GELU_EXP_LO = -9;
const POS_BINADES = 11; // e = −9 … 1: 2^−9 ≤ x < 4
const NEG_BINADES = 11; // and 2^−9 ≤ −x < 4
const CELLS = 1 << GELU_CELL_BITS;
/** Rows (cells) of one function's table: positive binades, negative binades, the cell around 0. */
export const GELU_ROWS = (POS_BINADES + NEG_BINADES) * CELLS + 1;
/** Row of the cell around 0. */
export const GELU_TINY_ROW = GELU_ROWS - 1;
/** Row of x's cell: (bits(|x|) >>> (23 − GELU_CELL_BITS)) − GELU_ROW_BIAS (+ GELU_NEG_ROWS for x < 0). */
export const GELU_ROW_BIAS = (127 + GELU_EXP_LO) << GELU_CELL_BITS;
/** Row offset of the negative cells. */
export const GELU_NEG_ROWS = POS_BINADES * CELLS;
/** The table covers x in (GELU_X_MIN, GELU_X_MAX). */
export const GELU_X_MIN = -(2 ** (GELU_EXP_LO + NEG_BINADES));
export const GELU_X_MAX = 2 ** (GELU_EXP_LO + POS_BINADES);
/** The tables in order: gelu exact, gelu tanh, geluBackward exact, geluBackward tanh (its table index: 2·backward + tanh). */
export const GELU_TABLE_COUNT = 4;
/** Float32 values of all tables (4 per row). */
export const GELU_TABLE_FLOATS = GELU_TABLE_COUNT * GELU_ROWS * 4;

const TANH_C = Math.sqrt(2 / Math.PI);
const TANH_A = 0.044715;
/** Order of the Taylor series economized to a cubic. */
const ORDER = 6;

/** Chebyshev polynomials T_0 … T_ORDER: CHEB[k·(ORDER+1) + j] is the coefficient of t^j in T_k. */
const CHEB = (() => {
  const n = ORDER + 1;
  const t = new Float64Array(n * n);
  t[0] = 1;
  t[n + 1] = 1;
  for (let k = 2; k <= ORDER; k++) {
    for (let j = 0; j < k; j++) t[k * n + j + 1] += 2 * t[(k - 1) * n + j];
    for (let j = 0; j < k - 1; j++) t[k * n + j] -= t[(k - 2) * n + j];
  }
  return t;
})();

/**
 * The cubic closest (in the max norm, nearly) to Σ_(k ≤ ORDER) a_k u^k on [−h, h], into c[0…3]
 * (a is overwritten): with t = u/h, each t^k (k > 3) from the top is replaced by t^k − 2^(1−k)·T_k(t),
 * a polynomial of degree k − 2 that differs from t^k by at most 2^(1−k).
 */
function economize(a: Float64Array, h: number, c: Float64Array): void {
  let p = 1;
  for (let k = 0; k <= ORDER; k++, p *= h) a[k] *= p;
  let half = 2 ** (1 - ORDER); // 2^(1−k), exact
  for (let k = ORDER; k > 3; k--, half *= 2) {
    const m = a[k] * half;
    a[k] = 0;
    for (let j = 0; j < k; j++) a[j] -= m * CHEB[k * (ORDER + 1) + j];
  }
  c[0] = a[0];
  c[1] = a[1] / h;
  c[2] = a[2] / (h * h);
  c[3] = a[3] / (h * h * h);
}

const N = ORDER + 2;
const sE = new Float64Array(N);
const sF = new Float64Array(N);
const sR = new Float64Array(N);
const sS = new Float64Array(N);
const sW = new Float64Array(4);

/** Taylor coefficients (order ORDER + 1) of y = x·Φ(x) at xc, into y. */
function exactSeries(xc: number, y: Float64Array): void {
  // φ(xc + u) = φ(xc)·E(u), E = e^(−xc·u − u²/2): (k+1)·e_(k+1) = −xc·e_k − e_(k−1);
  // Φ(xc + u) = Φ(xc) + φ(xc)·Σ e_k u^(k+1)/(k+1)
  const e = sE;
  const cdf = sS;
  e[0] = 1;
  e[1] = -xc;
  for (let k = 1; k + 1 < N; k++) e[k + 1] = (-xc * e[k] - e[k - 1]) / (k + 1);
  const phi = Math.exp(-0.5 * xc * xc) / Math.sqrt(2 * Math.PI);
  cdf[0] = normalCdf(xc);
  for (let k = 1; k < N; k++) cdf[k] = (phi * e[k - 1]) / k;
  y[0] = xc * cdf[0];
  for (let k = 1; k < N; k++) y[k] = xc * cdf[k] + cdf[k - 1];
}

/** Taylor coefficients of e^(s·W(xc + u)) into f, given those of W (degree 3), s = ±1. */
function expSeries(w: Float64Array, s: number, f: Float64Array): void {
  f[0] = Math.exp(s * w[0]);
  // f' = s·W'·f: (k+1)·f_(k+1) = s·Σ_j (j+1)·w_(j+1)·f_(k−j)
  for (let k = 0; k + 1 < N; k++) {
    let acc = 0;
    for (let j = 0; j <= Math.min(k, 2); j++) acc += (j + 1) * w[j + 1] * f[k - j];
    f[k + 1] = (s * acc) / (k + 1);
  }
}

/** Taylor coefficients of 1/(1 + F) into r, given those of F. */
function reciprocalOnePlus(f: Float64Array, r: Float64Array): void {
  r[0] = 1 / (1 + f[0]);
  for (let k = 1; k < N; k++) {
    let acc = 0;
    for (let j = 1; j <= k; j++) acc += f[j] * r[k - j];
    r[k] = -acc * r[0];
  }
}

/** Taylor coefficients (order ORDER + 1) of y = x·σ(W(x)), W = 2·√(2/π)·(x + 0.044715·x³), at xc, into y. */
function tanhSeries(xc: number, y: Float64Array): void {
  const c = 2 * TANH_C;
  const w = sW;
  w[0] = c * (xc + TANH_A * xc * xc * xc);
  w[1] = c * (1 + 3 * TANH_A * xc * xc);
  w[2] = c * 3 * TANH_A * xc;
  w[3] = c * TANH_A;
  const sig = sS;
  if (w[0] >= 0) {
    expSeries(w, -1, sF); // σ = 1/(1 + e^(−W))
    reciprocalOnePlus(sF, sig);
  } else {
    expSeries(w, 1, sF); // σ = e^W/(1 + e^W), no overflow
    reciprocalOnePlus(sF, sR);
    for (let k = 0; k < N; k++) {
      let acc = 0;
      for (let j = 0; j <= k; j++) acc += sF[j] * sR[k - j];
      sig[k] = acc;
    }
  }
  y[0] = xc * sig[0];
  for (let k = 1; k < N; k++) y[k] = xc * sig[k] + sig[k - 1];
}

const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);

/** The float32 value with these bits. */
function fromBits(bits: number): number {
  u32[0] = bits;
  return f32[0];
}

/** A row's cell: its center (a float32 value) and half-width (the module's `buildTables`). */
function cell(row: number): [number, number] {
  if (row === GELU_TINY_ROW) return [0, fromBits((127 + GELU_EXP_LO) << 23)];
  const neg = row >= GELU_NEG_ROWS ? 1 : 0;
  const r = row - neg * GELU_NEG_ROWS + GELU_ROW_BIAS; // biased exponent, then the cell's 7 mantissa bits
  const xc = fromBits(((neg << 31) | (r << (23 - GELU_CELL_BITS)) | (1 << (22 - GELU_CELL_BITS))) >>> 0);
  const h = fromBits(((r >> GELU_CELL_BITS) - GELU_CELL_BITS - 1) << 23);
  return [xc, h];
}

let tables: Float32Array | null = null;

/**
 * The GELU tables (float32, 4 per row: c0, c1, c2, c3; table t = 2·backward + tanh at row offset
 * t·GELU_ROWS), built on first use. The WebAssembly module builds the same tables, bit for bit, in
 * its own memory when it starts (wasm/elementwise.as.ts: `buildTables`).
 */
export function geluTables(): Float32Array {
  if (tables !== null) return tables;
  const out = new Float32Array(GELU_TABLE_FLOATS);
  const y = new Float64Array(N);
  const a = new Float64Array(ORDER + 1);
  const c = new Float64Array(4);
  for (let row = 0; row < GELU_ROWS; row++) {
    const [xc, h] = cell(row);
    for (let tanh = 0; tanh < 2; tanh++) {
      if (tanh) tanhSeries(xc, y);
      else exactSeries(xc, y);
      for (let backward = 0; backward < 2; backward++) {
        for (let k = 0; k <= ORDER; k++) a[k] = backward ? (k + 1) * y[k + 1] : y[k];
        economize(a, h, c);
        if (row === GELU_TINY_ROW && !backward) {
          // y = x/2 + x·(c1 − 1/2 + x·(c2 + x·c3)) around 0 (see geluTableValue)
          c[0] = 0;
          c[1] -= 0.5;
        }
        out.set(c, 4 * ((2 * backward + tanh) * GELU_ROWS + row));
      }
    }
  }
  tables = out;
  return out;
}

/** 2^(E − 150), E = 0 … 255: the value of a unit in the last place of a float32 of biased exponent E. */
const ULP_OF = (() => {
  const p = new Float64Array(256);
  let v = 1;
  for (let i = 0; i < 150; i++) v /= 2;
  for (let e = 0; e < 256; e++, v *= 2) p[e] = v;
  return p;
})();

/**
 * gelu (backward 0) or geluBackward (backward 1), exact or tanh, of a float32 x with GELU_X_MIN < x
 * < GELU_X_MAX from its table cell, in float32 arithmetic (the module's `tableStep` and
 * `tableEval`): c0 + u·(c1 + u·(c2 + u·c3)), u = x − xc exact (xc, the cell's center: x with the
 * mantissa bits below the cell's set to 1000…); around 0 (|x| < 2^GELU_EXP_LO) xc = 0 and, for
 * gelu, c0 = x/2 (the table's c1 less 1/2), which keeps the result's relative accuracy and the
 * sign of a zero.
 */
export function geluTableValue(t: Float32Array, backward: number, tanh: number, x: number): number {
  f32[0] = x;
  return geluTableAt(t, 4 * (2 * backward + tanh) * GELU_ROWS, !backward, u32[0], x);
}

/** geluTableValue of x (its float32 bits b) from the table at t[base…] (the loops' form). */
export function geluTableAt(t: Float32Array, base: number, forward: boolean, b: number, x: number): number {
  const ab = b & 0x7fffffff;
  const fr = Math.fround;
  let i: number;
  let c0: number;
  let u: number;
  if (ab >= (127 + GELU_EXP_LO) << 23) {
    i = base + 4 * ((ab >>> (23 - GELU_CELL_BITS)) - GELU_ROW_BIAS + (b >>> 31) * GELU_NEG_ROWS);
    c0 = t[i];
    // x − xc: the mantissa bits below the cell's less 1000…, in units of x's last place
    u = ((ab & ((1 << (23 - GELU_CELL_BITS)) - 1)) - (1 << (22 - GELU_CELL_BITS))) * ULP_OF[ab >>> 23];
    if (b >>> 31) u = -u;
  } else {
    i = base + 4 * GELU_TINY_ROW;
    c0 = forward ? 0.5 * x : t[i];
    u = x;
  }
  return fr(c0 + fr(u * fr(t[i + 1] + fr(u * fr(t[i + 2] + fr(u * t[i + 3]))))));
}
