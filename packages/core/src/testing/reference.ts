/**
 * The oracle: naive float64 implementations of every kernel of the `Backend` interface on plain
 * host arrays. Written for obviousness, not speed: loops follow the doc comments in
 * `backend.ts` literally, backward kernels are derived independently of the usual fused
 * formulas (explicit Jacobians for the norms and the attention softmax), and nothing here shares
 * code with any backend. Inputs are the values a backend would load (already rounded to their
 * storage dtype by the caller); outputs are exact float64 results before any storage rounding.
 * The one concession to speed (every backend's conformance run computes these): the explicit
 * Jacobian loops take their loop-invariant factors and row operands from values computed once
 * per row, which gives bit for bit the same results as writing each entry out in full.
 */
import type {
  AdamWParams,
  AttentionParams,
  BinaryOp,
  CrossEntropyParams,
  DropoutParams,
  MatmulParams,
  NormParams,
  RandomParams,
  ReduceOp,
  RotaryParams,
  UnaryOp,
  View,
} from '../backend.js';
import { philoxNormal, philoxUniform } from '../random/philox.js';

export type Values = ArrayLike<number>;

// --- views ---------------------------------------------------------------------------------------

export function viewSize(shape: readonly number[]): number {
  let n = 1;
  for (const s of shape) n *= s;
  return n;
}

/** Buffer offset of every element of a view, in row-major order of `view.shape`. */
export function viewOffsets(view: View): number[] {
  const n = viewSize(view.shape);
  const out = new Array<number>(n);
  for (let i = 0; i < n; i++) {
    let rem = i;
    let off = view.offset;
    for (let d = view.shape.length - 1; d >= 0; d--) {
      const s = view.shape[d]!;
      off += (rem % s) * view.strides[d]!;
      rem = Math.floor(rem / s);
    }
    out[i] = off;
  }
  return out;
}

/** The contiguous row-major view of a shape. */
export function contiguousView(shape: readonly number[], offset = 0): View {
  const strides = new Array<number>(shape.length);
  let s = 1;
  for (let d = shape.length - 1; d >= 0; d--) {
    strides[d] = s;
    s *= shape[d]!;
  }
  return { shape, strides, offset };
}

// --- data movement -------------------------------------------------------------------------------

export function fill(size: number, value: number): Float64Array {
  return new Float64Array(size).fill(value);
}

export function copy(x: Values, view: View): Float64Array {
  return Float64Array.from(viewOffsets(view), (o) => x[o]!);
}

/** Returns the new dst: dst[view(i)] += src[i]. */
export function addInto(dst: Values, src: Values, view: View): Float64Array {
  const out = Float64Array.from(dst);
  viewOffsets(view).forEach((o, i) => {
    out[o] = out[o]! + src[i]!;
  });
  return out;
}

// --- elementwise ---------------------------------------------------------------------------------

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

// --- matmul --------------------------------------------------------------------------------------

/** Elements a matmul operand or output spans: the last batch matrix ends there. */
export function matmulSpan(batch: number, stride: number, matrix: number): number {
  return (batch - 1) * stride + matrix;
}

/**
 * out[b] = alpha · op(a[b]) · op(b[b]) (+ out[b] when accumulate). `out` is the initial content of
 * the output buffer (needed for accumulate; its length sets the result's length).
 */
export function matmul(a: Values, b: Values, p: MatmulParams, out?: Values): Float64Array {
  const { batch, m, n, k, transA, transB, strideA, strideB, strideOut, alpha, accumulate } = p;
  const result = out ? Float64Array.from(out) : new Float64Array(matmulSpan(batch, strideOut, m * n));
  for (let t = 0; t < batch; t++) {
    const aBase = t * strideA;
    const bBase = t * strideB;
    const oBase = t * strideOut;
    for (let i = 0; i < m; i++) {
      for (let j = 0; j < n; j++) {
        let s = 0;
        for (let q = 0; q < k; q++) {
          const av = transA ? a[aBase + q * m + i]! : a[aBase + i * k + q]!;
          const bv = transB ? b[bBase + j * k + q]! : b[bBase + q * n + j]!;
          s += av * bv;
        }
        const o = oBase + i * n + j;
        result[o] = alpha * s + (accumulate ? result[o]! : 0);
      }
    }
  }
  return result;
}

// --- embedding -----------------------------------------------------------------------------------

export function embedding(weight: Values, ids: Values, n: number, dim: number): Float64Array {
  const out = new Float64Array(n * dim);
  for (let i = 0; i < n; i++) for (let d = 0; d < dim; d++) out[i * dim + d] = weight[ids[i]! * dim + d]!;
  return out;
}

export function embeddingBackward(dOut: Values, ids: Values, n: number, dim: number, rows: number): Float64Array {
  const dWeight = new Float64Array(rows * dim);
  for (let i = 0; i < n; i++) for (let d = 0; d < dim; d++) dWeight[ids[i]! * dim + d] = dWeight[ids[i]! * dim + d]! + dOut[i * dim + d]!;
  return dWeight;
}

// --- norms ---------------------------------------------------------------------------------------

function rowStats(x: Values, r: number, dim: number): { mean: number; variance: number; meanSquare: number } {
  let sum = 0;
  let sumSq = 0;
  for (let d = 0; d < dim; d++) {
    sum += x[r * dim + d]!;
    sumSq += x[r * dim + d]! ** 2;
  }
  const mean = sum / dim;
  let variance = 0;
  for (let d = 0; d < dim; d++) variance += (x[r * dim + d]! - mean) ** 2;
  return { mean, variance: variance / dim, meanSquare: sumSq / dim };
}

/** y = (x − mean)/√(var + eps) · weight + bias with the biased variance, as PyTorch. */
export function layerNorm(
  x: Values,
  weight: Values | null,
  bias: Values | null,
  p: NormParams,
): { out: Float64Array; mean: Float64Array; rstd: Float64Array } {
  const { rows, dim, eps } = p;
  const out = new Float64Array(rows * dim);
  const mean = new Float64Array(rows);
  const rstd = new Float64Array(rows);
  for (let r = 0; r < rows; r++) {
    const s = rowStats(x, r, dim);
    mean[r] = s.mean;
    rstd[r] = 1 / Math.sqrt(s.variance + eps);
    for (let d = 0; d < dim; d++) {
      const xhat = (x[r * dim + d]! - s.mean) * rstd[r]!;
      out[r * dim + d] = xhat * (weight ? weight[d]! : 1) + (bias ? bias[d]! : 0);
    }
  }
  return { out, mean, rstd };
}

/**
 * Through the explicit per-row Jacobian ∂y_i/∂x_j = w_i·(rstd·(δ_ij − 1/D) − rstd³·(x_i − μ)(x_j − μ)/D),
 * not the closed form backends use; statistics are recomputed from x in float64.
 */
export function layerNormBackward(
  dy: Values,
  x: Values,
  weight: Values | null,
  p: NormParams,
): { dx: Float64Array; dWeight: Float64Array; dBias: Float64Array } {
  const { rows, dim, eps } = p;
  const dx = new Float64Array(rows * dim);
  const dWeight = new Float64Array(dim);
  const dBias = new Float64Array(dim);
  // The row's operands in flat arrays and the Jacobian's per-row factors computed once: every
  // entry is still the full expression below, with the same float64 operations in the same order.
  const w = weight ? Float64Array.from(weight) : new Float64Array(dim).fill(1);
  const c = new Float64Array(dim);
  const g = new Float64Array(dim);
  for (let r = 0; r < rows; r++) {
    const { mean, variance } = rowStats(x, r, dim);
    const rs = 1 / Math.sqrt(variance + eps);
    const rs3 = rs ** 3;
    const [diag, off] = [rs * (1 - 1 / dim), rs * (0 - 1 / dim)]; // rs·(δ_ij − 1/D)
    for (let i = 0; i < dim; i++) {
      c[i] = x[r * dim + i]! - mean;
      g[i] = dy[r * dim + i]!;
    }
    for (let j = 0; j < dim; j++) {
      const cj = c[j]!;
      let acc = 0;
      for (let i = 0; i < dim; i++) {
        const jac = w[i]! * ((i === j ? diag : off) - (rs3 * c[i]! * cj) / dim);
        acc += g[i]! * jac;
      }
      dx[r * dim + j] = acc;
    }
    for (let i = 0; i < dim; i++) {
      dWeight[i] = dWeight[i]! + g[i]! * c[i]! * rs;
      dBias[i] = dBias[i]! + g[i]!;
    }
  }
  return { dx, dWeight, dBias };
}

/** y = x · rstd · weight, rstd = 1/√(mean(x²) + eps). */
export function rmsNorm(x: Values, weight: Values | null, p: NormParams): { out: Float64Array; rstd: Float64Array } {
  const { rows, dim, eps } = p;
  const out = new Float64Array(rows * dim);
  const rstd = new Float64Array(rows);
  for (let r = 0; r < rows; r++) {
    rstd[r] = 1 / Math.sqrt(rowStats(x, r, dim).meanSquare + eps);
    for (let d = 0; d < dim; d++) out[r * dim + d] = x[r * dim + d]! * rstd[r]! * (weight ? weight[d]! : 1);
  }
  return { out, rstd };
}

/** Through the explicit Jacobian ∂y_i/∂x_j = w_i·(rstd·δ_ij − rstd³·x_i·x_j/D). */
export function rmsNormBackward(dy: Values, x: Values, weight: Values | null, p: NormParams): { dx: Float64Array; dWeight: Float64Array } {
  const { rows, dim, eps } = p;
  const dx = new Float64Array(rows * dim);
  const dWeight = new Float64Array(dim);
  // As in layerNormBackward: flat row operands and per-row factors, the same operations per entry.
  const w = weight ? Float64Array.from(weight) : new Float64Array(dim).fill(1);
  const xv = new Float64Array(dim);
  const g = new Float64Array(dim);
  for (let r = 0; r < rows; r++) {
    const rs = 1 / Math.sqrt(rowStats(x, r, dim).meanSquare + eps);
    const rs3 = rs ** 3;
    const [diag, off] = [rs * 1, rs * 0]; // rs·δ_ij
    for (let i = 0; i < dim; i++) {
      xv[i] = x[r * dim + i]!;
      g[i] = dy[r * dim + i]!;
    }
    for (let j = 0; j < dim; j++) {
      const xj = xv[j]!;
      let acc = 0;
      for (let i = 0; i < dim; i++) {
        const jac = w[i]! * ((i === j ? diag : off) - (rs3 * xv[i]! * xj) / dim);
        acc += g[i]! * jac;
      }
      dx[r * dim + j] = acc;
    }
    for (let i = 0; i < dim; i++) dWeight[i] = dWeight[i]! + g[i]! * xv[i]! * rs;
  }
  return { dx, dWeight };
}

// --- rotary --------------------------------------------------------------------------------------

function rotate(x: Values, positions: Values, p: RotaryParams, sign: 1 | -1): Float64Array {
  const { batch, seq, heads, headDim, rotaryDim, base, positionScale } = p;
  const half = rotaryDim / 2;
  const out = Float64Array.from(x);
  for (let b = 0; b < batch; b++) {
    for (let s = 0; s < seq; s++) {
      const pos = positions[b * seq + s]!;
      for (let h = 0; h < heads; h++) {
        const row = ((b * seq + s) * heads + h) * headDim;
        for (let i = 0; i < half; i++) {
          const angle = (pos / positionScale) * base ** ((-2 * i) / rotaryDim);
          const c = Math.cos(angle);
          const sn = sign * Math.sin(angle);
          const x1 = x[row + i]!;
          const x2 = x[row + i + half]!;
          out[row + i] = x1 * c - x2 * sn;
          out[row + i + half] = x2 * c + x1 * sn;
        }
      }
    }
  }
  return out;
}

/** Rotate-half: out[i] = x[i]·cos − x[i+half]·sin, out[i+half] = x[i+half]·cos + x[i]·sin; the rest copied. */
export function rotary(x: Values, positions: Values, p: RotaryParams): Float64Array {
  return rotate(x, positions, p, 1);
}

/** The transpose (= inverse) rotation: by −angle. */
export function rotaryBackward(dy: Values, positions: Values, p: RotaryParams): Float64Array {
  return rotate(dy, positions, p, -1);
}

// --- attention -----------------------------------------------------------------------------------

interface AttentionRow {
  /** Keys this query sees. */
  keys: number[];
  /** Softmax probabilities over `keys`. */
  probs: number[];
  lse: number;
}

function attentionRow(q: Values, k: Values, mask: Values | null, p: AttentionParams, b: number, h: number, i: number): AttentionRow {
  const { seqQ, seqK, heads, kvHeads, headDim, scale, causal } = p;
  const kvh = Math.floor(h / (heads / kvHeads));
  const keys: number[] = [];
  const scores: number[] = [];
  for (let j = 0; j < seqK; j++) {
    if (causal && j > i + seqK - seqQ) continue;
    if (mask && mask[b * seqK + j] === 0) continue;
    let s = 0;
    for (let d = 0; d < headDim; d++)
      s += q[((b * seqQ + i) * heads + h) * headDim + d]! * k[((b * seqK + j) * kvHeads + kvh) * headDim + d]!;
    keys.push(j);
    scores.push(s * scale);
  }
  if (keys.length === 0) return { keys, probs: [], lse: Number.NEGATIVE_INFINITY };
  const max = Math.max(...scores);
  let z = 0;
  for (const s of scores) z += Math.exp(s - max);
  const lse = max + Math.log(z);
  return { keys, probs: scores.map((s) => Math.exp(s - lse)), lse };
}

/** Explicit score matrix per (batch, head): softmax(scale·q·kᵀ) over the keys a query sees, times v. */
export function attention(
  q: Values,
  k: Values,
  v: Values,
  mask: Values | null,
  p: AttentionParams,
): { out: Float64Array; lse: Float64Array } {
  const { batch, seqQ, seqK, heads, kvHeads, headDim } = p;
  const out = new Float64Array(batch * seqQ * heads * headDim);
  const lse = new Float64Array(batch * heads * seqQ);
  for (let b = 0; b < batch; b++) {
    for (let h = 0; h < heads; h++) {
      const kvh = Math.floor(h / (heads / kvHeads));
      for (let i = 0; i < seqQ; i++) {
        const row = attentionRow(q, k, mask, p, b, h, i);
        lse[(b * heads + h) * seqQ + i] = row.lse;
        row.keys.forEach((j, t) => {
          for (let d = 0; d < headDim; d++) {
            const o = ((b * seqQ + i) * heads + h) * headDim + d;
            out[o] = out[o]! + row.probs[t]! * v[((b * seqK + j) * kvHeads + kvh) * headDim + d]!;
          }
        });
      }
    }
  }
  return { out, lse };
}

/**
 * Backward through the explicit softmax Jacobian ∂P_l/∂S_j = P_l(δ_lj − P_j), with P recomputed
 * from q and k (the saved out and lse are not used).
 */
export function attentionBackward(
  dOut: Values,
  q: Values,
  k: Values,
  v: Values,
  mask: Values | null,
  p: AttentionParams,
): { dq: Float64Array; dk: Float64Array; dv: Float64Array } {
  const { batch, seqQ, seqK, heads, kvHeads, headDim, scale } = p;
  const dq = new Float64Array(q.length);
  const dk = new Float64Array(k.length);
  const dv = new Float64Array(v.length);
  for (let b = 0; b < batch; b++) {
    for (let h = 0; h < heads; h++) {
      const kvh = Math.floor(h / (heads / kvHeads));
      for (let i = 0; i < seqQ; i++) {
        const row = attentionRow(q, k, mask, p, b, h, i);
        const keys = row.keys;
        const probs = Float64Array.from(row.probs);
        const qo = ((b * seqQ + i) * heads + h) * headDim;
        const ko = (j: number) => ((b * seqK + j) * kvHeads + kvh) * headDim;
        const dP = Float64Array.from(keys, (j) => {
          let s = 0;
          for (let d = 0; d < headDim; d++) s += dOut[qo + d]! * v[ko(j) + d]!;
          return s;
        });
        for (let t = 0; t < keys.length; t++) {
          const pt = probs[t]!;
          let dS = 0;
          for (let l = 0; l < keys.length; l++) dS += dP[l]! * probs[l]! * ((l === t ? 1 : 0) - pt);
          const kj = ko(keys[t]!);
          for (let d = 0; d < headDim; d++) {
            dq[qo + d] = dq[qo + d]! + scale * dS * k[kj + d]!;
            dk[kj + d] = dk[kj + d]! + scale * dS * q[qo + d]!;
            dv[kj + d] = dv[kj + d]! + pt * dOut[qo + d]!;
          }
        }
      }
    }
  }
  return { dq, dk, dv };
}

// --- activations ---------------------------------------------------------------------------------

/** erf to float64 accuracy: (2/√π)·e^(−x²)·Σ x·(2x²)ⁿ/(2n+1)!!, a series of positive terms. */
export function erf(x: number): number {
  const ax = Math.abs(x);
  if (ax > 6) return Math.sign(x);
  let term = ax;
  let sum = ax;
  for (let n = 1; n < 500 && term > sum * 1e-17; n++) {
    term *= (2 * ax * ax) / (2 * n + 1);
    sum += term;
  }
  return Math.sign(x) * (2 / Math.sqrt(Math.PI)) * Math.exp(-ax * ax) * sum;
}

const GELU_C = Math.sqrt(2 / Math.PI);

export function geluScalar(x: number, approximate: boolean): number {
  if (approximate) return 0.5 * x * (1 + Math.tanh(GELU_C * (x + 0.044715 * x ** 3)));
  return 0.5 * x * (1 + erf(x / Math.SQRT2));
}

export function gelu(x: Values, approximate: boolean): Float64Array {
  return Float64Array.from(x, (v) => geluScalar(v, approximate));
}

export function geluBackward(dy: Values, x: Values, approximate: boolean): Float64Array {
  return Float64Array.from(x, (v, i) => {
    let d: number;
    if (approximate) {
      const t = Math.tanh(GELU_C * (v + 0.044715 * v ** 3));
      d = 0.5 * (1 + t) + 0.5 * v * (1 - t * t) * GELU_C * (1 + 3 * 0.044715 * v * v);
    } else {
      d = 0.5 * (1 + erf(v / Math.SQRT2)) + (v * Math.exp(-0.5 * v * v)) / Math.sqrt(2 * Math.PI);
    }
    return dy[i]! * d;
  });
}

export function siluMul(gate: Values, up: Values): Float64Array {
  return Float64Array.from(gate, (g, i) => unaryScalar('silu', g) * up[i]!);
}

export function siluMulBackward(dy: Values, gate: Values, up: Values): { dGate: Float64Array; dUp: Float64Array } {
  const dGate = Float64Array.from(gate, (g, i) => {
    const s = sigmoidScalar(g);
    return dy[i]! * up[i]! * s * (1 + g * (1 - s));
  });
  const dUp = Float64Array.from(gate, (g, i) => dy[i]! * unaryScalar('silu', g));
  return { dGate, dUp };
}

// --- loss ----------------------------------------------------------------------------------------

/** loss = logsumexp(row) − row[target], 0 for ignored rows; lse is computed for every row. */
export function crossEntropy(logits: Values, targets: Values, p: CrossEntropyParams): { loss: Float64Array; lse: Float64Array } {
  const { rows, classes, ignoreIndex } = p;
  const loss = new Float64Array(rows);
  const lse = new Float64Array(rows);
  for (let r = 0; r < rows; r++) {
    let max = Number.NEGATIVE_INFINITY;
    for (let c = 0; c < classes; c++) max = Math.max(max, logits[r * classes + c]!);
    let z = 0;
    for (let c = 0; c < classes; c++) z += Math.exp(logits[r * classes + c]! - max);
    lse[r] = max + Math.log(z);
    const t = targets[r]!;
    loss[r] = t === ignoreIndex ? 0 : lse[r]! - logits[r * classes + t]!;
  }
  return { loss, lse };
}

export function crossEntropyBackward(dLoss: Values, logits: Values, targets: Values, p: CrossEntropyParams): Float64Array {
  const { rows, classes, ignoreIndex } = p;
  const { lse } = crossEntropy(logits, targets, p);
  const d = new Float64Array(rows * classes);
  for (let r = 0; r < rows; r++) {
    if (targets[r] === ignoreIndex) continue;
    for (let c = 0; c < classes; c++) {
      const softmax = Math.exp(logits[r * classes + c]! - lse[r]!);
      d[r * classes + c] = (softmax - (c === targets[r] ? 1 : 0)) * dLoss[r]!;
    }
  }
  return d;
}

// --- randomness ----------------------------------------------------------------------------------

export function random(n: number, p: RandomParams): Float64Array {
  const values =
    p.distribution === 'uniform' ? philoxUniform(p.seed, p.offset, n, p.low, p.high) : philoxNormal(p.seed, p.offset, n, p.low, p.high);
  return Float64Array.from(values);
}

/** 1 where the element is kept: uniform(seed, offset)[i] ≥ p. */
export function dropoutMask(n: number, p: DropoutParams): Uint8Array {
  const u = philoxUniform(p.seed, p.offset, n);
  return Uint8Array.from(u, (x) => (x >= p.p ? 1 : 0));
}

export function dropout(x: Values, p: DropoutParams): Float64Array {
  const mask = dropoutMask(x.length, p);
  return Float64Array.from(x, (v, i) => (mask[i] ? v / (1 - p.p) : 0));
}

export function dropoutBackward(dy: Values, p: DropoutParams): Float64Array {
  return dropout(dy, p);
}

// --- optimizer -----------------------------------------------------------------------------------

/** PyTorch AdamW: p ← p − lr·wd·p; g ← grad·gradScale; moments; bias-corrected update. */
export function adamw(
  param: Values,
  grad: Values,
  m: Values,
  v: Values,
  p: AdamWParams,
  scalars?: Values | null,
): { param: Float64Array; m: Float64Array; v: Float64Array } {
  const { beta1, beta2, eps, weightDecay } = p;
  // With device scalars (lr, 1 − β1^t, 1 − β2^t, gradScale) those replace p's values.
  const lr = scalars ? scalars[0]! : p.lr;
  const bc1 = scalars ? scalars[1]! : 1 - beta1 ** p.step;
  const bc2 = scalars ? scalars[2]! : 1 - beta2 ** p.step;
  const gradScale = scalars ? scalars[3]! : p.gradScale;
  const outP = new Float64Array(param.length);
  const outM = new Float64Array(param.length);
  const outV = new Float64Array(param.length);
  for (let i = 0; i < param.length; i++) {
    const g = grad[i]! * gradScale;
    const decayed = param[i]! - lr * weightDecay * param[i]!;
    outM[i] = beta1 * m[i]! + (1 - beta1) * g;
    outV[i] = beta2 * v[i]! + (1 - beta2) * g * g;
    const mHat = outM[i]! / bc1;
    const vHat = outV[i]! / bc2;
    outP[i] = decayed - (lr * mHat) / (Math.sqrt(vHat) + eps);
  }
  return { param: outP, m: outM, v: outV };
}
