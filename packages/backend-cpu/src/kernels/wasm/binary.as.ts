// @ts-nocheck -- AssemblyScript source (compiled by scripts/build-wasm.mjs as part of elementwise.as.ts), not TypeScript.
//
// The elementwise module's binary ops (add, sub, mul, div, max, min) in float32 lanes: for float32
// inputs +, −, ×, ÷ rounded once to float32 equal the double result rounded to float32, and
// f32x4.max / min propagate NaN and order −0 < +0 like Math.max / Math.min.

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
