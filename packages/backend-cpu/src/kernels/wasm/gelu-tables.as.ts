// @ts-nocheck -- AssemblyScript source (compiled by scripts/build-wasm.mjs as part of elementwise.as.ts), not TypeScript.
//
// The GELU tables of the elementwise module: their layout in the module's memory and the code that
// builds them when the module starts, exactly math.ts's `geluTables` (double precision, operation
// for operation), so that the kernels in elementwise.as.ts evaluate exactly math.ts's
// `geluTableValue`. e^x comes from the host's Math.exp, as in math.ts.

/** Math.exp from the host (imported as "gelu-tables.as" "exp", the module named after this file). */
declare function exp(x: f64): f64;

const SQRT1_2: f64 = Math.SQRT1_2;
export const TANH_C: f64 = 0.7978845608028654; // √(2/π)
export const TANH_A: f64 = 0.044715;

/** Scratch of `buildTables` (float64 arrays), past the elementwise module's constants (it checks). */
export const SCRATCH: usize = 4096;
// The GELU tables (math.ts: GELU_*): rows of four float32 (c0, c1, c2, c3), table t = 2·backward +
// tanh. A lane's row is at tableBase(t) + 16·(bits(x) >>> 16): 16 bytes per cell, the sign bit
// included, so that a table's positive cells (x ≥ 2^EXP_LO) are at TPOS + t·NEG_ROWS·16, its negative
// cells SIGN_GAP bytes further (the addresses between are never read), and its cell around 0 at
// TTINY + t·16. The pages between the regions are never touched.
export const CELL_BITS: i32 = 7;
export const CELL_SHIFT: i32 = 23 - CELL_BITS;
export const EXP_LO: i32 = -9;
export const BINADES: i32 = 11; // e = −9 … 1: 2^−9 ≤ |x| < 4
export const NEG_ROWS: i32 = BINADES << CELL_BITS; // math.ts's row of the first negative cell
export const ROWS: i32 = 2 * NEG_ROWS + 1;
export const TINY_ROW: i32 = ROWS - 1;
export const ROW_BIAS: i32 = (127 + EXP_LO) << CELL_BITS;
const ORDER: i32 = 6; // the Taylor series' order, economized to a cubic
const N: i32 = ORDER + 2;
const S_E: usize = SCRATCH;
const S_F: usize = S_E + 8 * <usize>N;
const S_R: usize = S_F + 8 * <usize>N;
const S_S: usize = S_R + 8 * <usize>N;
const S_Y: usize = S_S + 8 * <usize>N;
const S_A: usize = S_Y + 8 * <usize>N;
const S_W: usize = S_A + 8 * <usize>N;
const S_C: usize = S_W + 32;
const S_CHEB: usize = S_C + 32;
export const TPOS: usize = 256 << 10; // ≥ 16·ROW_BIAS, so tableBase(0) ≥ 0 (and past the scratch)
export const SIGN_GAP: usize = (<usize>1) << (31 - CELL_SHIFT + 4);
export const TTINY: usize = TPOS + SIGN_GAP + 4 * 16 * <usize>NEG_ROWS;

/** Base of table t's row addresses (16·(bits(x) >>> 16) on). */
export function tableBase(t: i32): usize {
  return TPOS + 16 * <usize>(t * NEG_ROWS) - 16 * <usize>ROW_BIAS;
}

/** Address of math.ts's row `row` of table t. */
export function rowAddress(t: i32, row: i32): usize {
  if (row === TINY_ROW) return TTINY + 16 * <usize>t;
  const r = row < NEG_ROWS ? row : row - NEG_ROWS + (1 << (31 - CELL_SHIFT));
  return tableBase(t) + 16 * <usize>(r + ROW_BIAS);
}

// ---- the GELU tables: math.ts's geluTables, operation for operation ----

function ld(p: usize, i: i32): f64 {
  return load<f64>(p + ((<usize>i) << 3));
}

function st(p: usize, i: i32, v: f64): void {
  store<f64>(p + ((<usize>i) << 3), v);
}

const SQRT_PI: f64 = Math.sqrt(Math.PI);
const SQRT_2PI: f64 = Math.sqrt(2 * Math.PI);
const TWO_SQRT_PI: f64 = 2 / Math.sqrt(Math.PI);

/** math.ts: erfcLarge. */
function erfcLarge(x: f64): f64 {
  if (x > 27) return 0;
  const tiny: f64 = 1e-300;
  let f = x;
  let c = x;
  let d: f64 = 0;
  for (let n = 1; n < 500; n++) {
    const a = <f64>n / 2;
    d = x + a * d;
    d = d === 0 ? tiny : d;
    c = x + a / c;
    c = c === 0 ? tiny : c;
    d = 1 / d;
    const delta = c * d;
    f *= delta;
    if (Math.abs(delta - 1) < 1e-16) break;
  }
  return exp(-x * x) / (SQRT_PI * f);
}

/** math.ts: erf. */
function erfSeries(x: f64): f64 {
  const ax = Math.abs(x);
  if (ax >= 3) {
    const r = 1 - erfcLarge(ax);
    return x < 0 ? -r : r;
  }
  const x2 = x * x;
  let term = x;
  let sum = x;
  for (let n = 1; n < 200; n++) {
    term *= (2 * x2) / <f64>(2 * n + 1);
    sum += term;
    if (Math.abs(term) < 1e-17 * Math.abs(sum)) break;
  }
  return TWO_SQRT_PI * exp(-x2) * sum;
}

/** math.ts: normalCdf. */
function normalCdf(x: f64): f64 {
  const z = x * SQRT1_2;
  if (z > -2) return 0.5 * (1 + erfSeries(z));
  return 0.5 * erfcLarge(-z);
}

/** math.ts: exactSeries, into S_Y. */
function exactSeries(xc: f64): void {
  st(S_E, 0, 1);
  st(S_E, 1, -xc);
  for (let k = 1; k + 1 < N; k++) st(S_E, k + 1, (-xc * ld(S_E, k) - ld(S_E, k - 1)) / <f64>(k + 1));
  const phi = exp(-0.5 * xc * xc) / SQRT_2PI;
  st(S_S, 0, normalCdf(xc));
  for (let k = 1; k < N; k++) st(S_S, k, (phi * ld(S_E, k - 1)) / <f64>k);
  st(S_Y, 0, xc * ld(S_S, 0));
  for (let k = 1; k < N; k++) st(S_Y, k, xc * ld(S_S, k) + ld(S_S, k - 1));
}

/** math.ts: expSeries (W at S_W), into f. */
function expSeries(s: f64, f: usize): void {
  st(f, 0, exp(s * ld(S_W, 0)));
  for (let k = 0; k + 1 < N; k++) {
    let acc: f64 = 0;
    for (let j = 0; j <= min(k, 2); j++) acc += <f64>(j + 1) * ld(S_W, j + 1) * ld(f, k - j);
    st(f, k + 1, (s * acc) / <f64>(k + 1));
  }
}

/** math.ts: reciprocalOnePlus. */
function reciprocalOnePlus(f: usize, r: usize): void {
  st(r, 0, 1 / (1 + ld(f, 0)));
  for (let k = 1; k < N; k++) {
    let acc: f64 = 0;
    for (let j = 1; j <= k; j++) acc += ld(f, j) * ld(r, k - j);
    st(r, k, -acc * ld(r, 0));
  }
}

/** math.ts: tanhSeries, into S_Y. */
function tanhSeries(xc: f64): void {
  const c = 2 * TANH_C;
  st(S_W, 0, c * (xc + TANH_A * xc * xc * xc));
  st(S_W, 1, c * (1 + 3 * TANH_A * xc * xc));
  st(S_W, 2, c * 3 * TANH_A * xc);
  st(S_W, 3, c * TANH_A);
  if (ld(S_W, 0) >= 0) {
    expSeries(-1, S_F);
    reciprocalOnePlus(S_F, S_S);
  } else {
    expSeries(1, S_F);
    reciprocalOnePlus(S_F, S_R);
    for (let k = 0; k < N; k++) {
      let acc: f64 = 0;
      for (let j = 0; j <= k; j++) acc += ld(S_F, j) * ld(S_R, k - j);
      st(S_S, k, acc);
    }
  }
  st(S_Y, 0, xc * ld(S_S, 0));
  for (let k = 1; k < N; k++) st(S_Y, k, xc * ld(S_S, k) + ld(S_S, k - 1));
}

/** math.ts: economize (a at S_A, c at S_C). */
function economize(h: f64): void {
  let p: f64 = 1;
  for (let k = 0; k <= ORDER; k++, p *= h) st(S_A, k, ld(S_A, k) * p);
  let half: f64 = reinterpret<f64>((<i64>(1023 + 1 - ORDER)) << 52); // 2^(1−k)
  for (let k = ORDER; k > 3; k--, half *= 2) {
    const s = ld(S_A, k) * half;
    st(S_A, k, 0);
    for (let j = 0; j < k; j++) st(S_A, j, ld(S_A, j) - s * ld(S_CHEB, k * (ORDER + 1) + j));
  }
  st(S_C, 0, ld(S_A, 0));
  st(S_C, 1, ld(S_A, 1) / h);
  st(S_C, 2, ld(S_A, 2) / (h * h));
  st(S_C, 3, ld(S_A, 3) / (h * h * h));
}

/** math.ts: geluTables, at rowAddress. */
export function buildTables(): void {
  const n = ORDER + 1;
  for (let i = 0; i < n * n; i++) st(S_CHEB, i, 0);
  st(S_CHEB, 0, 1);
  st(S_CHEB, n + 1, 1);
  for (let k = 2; k <= ORDER; k++) {
    for (let j = 0; j < k; j++) st(S_CHEB, k * n + j + 1, ld(S_CHEB, k * n + j + 1) + 2 * ld(S_CHEB, (k - 1) * n + j));
    for (let j = 0; j < k - 1; j++) st(S_CHEB, k * n + j, ld(S_CHEB, k * n + j) - ld(S_CHEB, (k - 2) * n + j));
  }
  for (let row = 0; row < ROWS; row++) {
    // the cell's center xc (a float32) and half-width h (math.ts: cell)
    let xc: f64 = 0;
    let h: f64 = <f64>reinterpret<f32>((127 + EXP_LO) << 23);
    if (row !== TINY_ROW) {
      const neg = row >= NEG_ROWS ? 1 : 0;
      const r = row - neg * NEG_ROWS + ROW_BIAS;
      xc = <f64>reinterpret<f32>((neg << 31) | (r << CELL_SHIFT) | (1 << (CELL_SHIFT - 1)));
      h = <f64>reinterpret<f32>(((r >> CELL_BITS) - CELL_BITS - 1) << 23);
    }
    for (let tanh = 0; tanh < 2; tanh++) {
      if (tanh) tanhSeries(xc);
      else exactSeries(xc);
      for (let backward = 0; backward < 2; backward++) {
        for (let k = 0; k <= ORDER; k++) st(S_A, k, backward ? <f64>(k + 1) * ld(S_Y, k + 1) : ld(S_Y, k));
        economize(h);
        if (row === TINY_ROW && !backward) {
          st(S_C, 0, 0);
          st(S_C, 1, ld(S_C, 1) - 0.5);
        }
        const at = rowAddress(2 * backward + tanh, row);
        for (let j = 0; j < 4; j++) store<f32>(at + ((<usize>j) << 2), <f32>ld(S_C, j));
      }
    }
  }
}
