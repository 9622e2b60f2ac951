/** The oracle's elementwise kernels: unary (forward and backward), affine, binary over views; reduce and argmax. */
import type { BinaryOp, ReduceOp, UnaryOp, View } from '../../backend.js';
import { type Values, viewOffsets } from './views.js';

function sigmoidScalar(x: number): number {
  return 1 / (1 + Math.exp(-x));
}

export function unaryScalar(op: UnaryOp, x: number): number {
  switch (op) {
    case 'neg':
      return -x;
    case 'exp':
      return Math.exp(x);
    case 'log':
      return Math.log(x);
    case 'sqrt':
      return Math.sqrt(x);
    case 'rsqrt':
      return 1 / Math.sqrt(x);
    case 'square':
      return x * x;
    case 'abs':
      return Math.abs(x);
    case 'silu':
      return x * sigmoidScalar(x);
    case 'sigmoid':
      return sigmoidScalar(x);
    case 'tanh':
      return Math.tanh(x);
    case 'relu':
      return Math.max(x, 0);
  }
}

export function unary(op: UnaryOp, x: Values): Float64Array {
  return Float64Array.from(x, (v) => unaryScalar(op, v));
}

/**
 * dx = dy · f'(x). As the interface says, f' comes from y = f(x) for exp, sqrt, rsqrt, sigmoid and
 * tanh (so the oracle sees the same saved output a backend sees) and from x for the others.
 */
export function unaryBackward(op: UnaryOp, dy: Values, x: Values, y: Values): Float64Array {
  const out = new Float64Array(dy.length);
  for (let i = 0; i < dy.length; i++) {
    const g = dy[i]!;
    const xi = x[i]!;
    const yi = y[i]!;
    let d: number;
    switch (op) {
      case 'neg':
        d = -1;
        break;
      case 'exp':
        d = yi;
        break;
      case 'log':
        d = 1 / xi;
        break;
      case 'sqrt':
        d = 1 / (2 * yi);
        break;
      case 'rsqrt':
        d = -0.5 * yi * yi * yi;
        break;
      case 'square':
        d = 2 * xi;
        break;
      case 'abs':
        d = xi > 0 ? 1 : xi < 0 ? -1 : 0;
        break;
      case 'silu': {
        const s = sigmoidScalar(xi);
        d = s * (1 + xi * (1 - s));
        break;
      }
      case 'sigmoid':
        d = yi * (1 - yi);
        break;
      case 'tanh':
        d = 1 - yi * yi;
        break;
      case 'relu':
        d = xi > 0 ? 1 : 0;
        break;
    }
    out[i] = g * d;
  }
  return out;
}

export function affine(x: Values, alpha: number, beta: number): Float64Array {
  return Float64Array.from(x, (v) => v * alpha + beta);
}

export function binaryScalar(op: BinaryOp, a: number, b: number): number {
  switch (op) {
    case 'add':
      return a + b;
    case 'sub':
      return a - b;
    case 'mul':
      return a * b;
    case 'div':
      return a / b;
    case 'max':
      return Math.max(a, b);
    case 'min':
      return Math.min(a, b);
  }
}

export function binary(op: BinaryOp, a: Values, aView: View, b: Values, bView: View): Float64Array {
  const ao = viewOffsets(aView);
  const bo = viewOffsets(bView);
  return Float64Array.from(ao, (o, i) => binaryScalar(op, a[o]!, b[bo[i]!]!));
}

export function reduce(op: ReduceOp, x: Values, outer: number, reduceLen: number, inner: number): Float64Array {
  const out = new Float64Array(outer * inner);
  for (let o = 0; o < outer; o++) {
    for (let i = 0; i < inner; i++) {
      let acc = op === 'sum' ? 0 : Number.NEGATIVE_INFINITY;
      for (let r = 0; r < reduceLen; r++) {
        const v = x[(o * reduceLen + r) * inner + i]!;
        acc = op === 'sum' ? acc + v : Math.max(acc, v);
      }
      out[o * inner + i] = acc;
    }
  }
  return out;
}

/** Index of the largest value of each row; the first one on ties. */
export function argmax(x: Values, rows: number, cols: number): Int32Array {
  const out = new Int32Array(rows);
  for (let r = 0; r < rows; r++) {
    let best = 0;
    for (let c = 1; c < cols; c++) if (x[r * cols + c]! > x[r * cols + best]!) best = c;
    out[r] = best;
  }
  return out;
}
