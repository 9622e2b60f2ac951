import { needsGrad, record, save } from '../autograd/tape.js';
import { formatShape, shapeSize, type Tensor } from '../tensor.js';
import { add } from './elementwise.js';
import { sumTo } from './shape.js';
import { alloc, backendOf, broadcastView, promote, requireFloat } from './util.js';

export interface MatmulOptions {
  /** Read `a`'s last two dimensions transposed. */
  transA?: boolean;
  /** Read `b`'s last two dimensions transposed (`x · Wᵀ` for a weight stored [out, in]). */
  transB?: boolean;
}

/**
 * Matrix product over the last two dimensions. `b` of rank 2 is shared by every matrix of `a`
 * (then a's leading dimensions fold into one GEMM); otherwise both carry the same batch
 * dimensions. The frozen-weight case costs no weight-gradient GEMM in backward.
 */
export function matmul(a: Tensor, b: Tensor, opts: MatmulOptions = {}): Tensor {
  const op = 'matmul';
  backendOf(op, [a, b]); // same backend, none disposed
  requireFloat(op, a);
  requireFloat(op, b);
  const transA = opts.transA ?? false;
  const transB = opts.transB ?? false;
  if (a.rank < 2 || b.rank < 2) throw new Error(`${op}: ${a.describe()} and ${b.describe()} must both have rank >= 2`);
  const am = a.shape[a.rank - 2]!;
  const ak = a.shape[a.rank - 1]!;
  const [m, k] = transA ? [ak, am] : [am, ak];
  const [bk, n] = transB ? [b.shape[b.rank - 1]!, b.shape[b.rank - 2]!] : [b.shape[b.rank - 2]!, b.shape[b.rank - 1]!];
  if (k !== bk) {
    throw new Error(
      `${op}: inner dimensions differ: a is ${formatShape(a.shape)}${transA ? 'ᵀ' : ''}, b is ${formatShape(b.shape)}${transB ? 'ᵀ' : ''} (${k} vs ${bk})`,
    );
  }
  const batchShape = a.shape.slice(0, -2);
  if (b.rank > 2 && (b.rank !== a.rank || b.shape.slice(0, -2).some((d, i) => d !== batchShape[i]))) {
    throw new Error(
      `${op}: batch dimensions of ${a.describe()} and ${b.describe()} differ; b must be rank 2 or share a's batch dimensions`,
    );
  }
  const y = gemm(a, b, transA, transB, [...batchShape, m, n], op);
  if (needsGrad([a, b])) {
    const as = b.requiresGrad ? save(a) : null;
    const bs = a.requiresGrad ? save(b) : null;
    record(
      op,
      [a, b],
      [y],
      [as, bs].filter((t) => t !== null),
      ([g]) => {
        let da: Tensor | null = null;
        let db: Tensor | null = null;
        if (bs) {
          // op(a) = g · op(b)ᵀ
          da = transA ? gemm(bs, g!, transB, true, a.shape) : gemm(g!, bs, false, !transB, a.shape);
        }
        if (as) {
          // op(b) = op(a)ᵀ · g; for a shared rank-2 b this sums over the batch in one GEMM.
          db = transB ? gemm(g!, as, true, transA, b.shape) : gemm(as, g!, !transA, false, b.shape);
        }
        return [da, db];
      },
    );
  }
  return y;
}

/**
 * The product op(a)·op(b) as one backend GEMM (nothing recorded), shaped `outShape`. A shared
 * rank-2 b folds a's batch into the rows; when outShape is rank 2 and the operands carry a batch,
 * the batch folds into the reduction dimension (gradient of a shared weight).
 */
function gemm(a: Tensor, b: Tensor, transA: boolean, transB: boolean, outShape: readonly number[], op = 'matmul backward'): Tensor {
  const backend = backendOf(op, [a, b]);
  const y = alloc(backend, outShape, promote(op, a, b), op);
  if (y.size === 0) return y;
  if (a.size === 0 || b.size === 0) {
    // An empty reduction dimension: the product is all zeros.
    backend.fill(y.buffer(), 0);
    return y;
  }
  const m = outShape[outShape.length - 2]!;
  const n = outShape[outShape.length - 1]!;
  if (outShape.length === 2 && (a.rank > 2 || b.rank > 2)) {
    // Both operands are [..., r, c] batches; fold the batch into k by viewing them as 2-D.
    const k = a.size / m;
    const aFolded = a.rank > 2 && transA;
    const bFolded = b.rank > 2 && !transB;
    if (!aFolded && a.rank > 2) throw new Error(`${op}: unsupported layout for ${a.describe()}`);
    if (!bFolded && b.rank > 2) throw new Error(`${op}: unsupported layout for ${b.describe()}`);
    backend.matmul(y.buffer(), a.buffer(op), b.buffer(op), {
      batch: 1,
      m,
      n,
      k,
      transA,
      transB,
      strideA: 0,
      strideB: 0,
      strideOut: 0,
      alpha: 1,
      accumulate: false,
    });
    return y;
  }
  const batch = shapeSize(outShape.slice(0, -2));
  const k = transA ? a.shape[a.rank - 2]! : a.shape[a.rank - 1]!;
  if (b.rank === 2 && !transA && a.rank > 2) {
    backend.matmul(y.buffer(), a.buffer(op), b.buffer(op), {
      batch: 1,
      m: batch * m,
      n,
      k,
      transA,
      transB,
      strideA: 0,
      strideB: 0,
      strideOut: 0,
      alpha: 1,
      accumulate: false,
    });
  } else {
    backend.matmul(y.buffer(), a.buffer(op), b.buffer(op), {
      batch,
      m,
      n,
      k,
      transA,
      transB,
      strideA: a.rank > 2 ? m * k : 0,
      strideB: b.rank > 2 ? k * n : 0,
      strideOut: m * n,
      alpha: 1,
      accumulate: false,
    });
  }
  return y;
}

/** y = x · weightᵀ + bias, with weight stored [out, in] as in PyTorch. */
export function linear(x: Tensor, weight: Tensor, bias?: Tensor | null): Tensor {
  return linearSum([[x, weight]], bias);
}

/**
 * y = x₀ · w₀ᵀ + x₁ · w₁ᵀ + … + bias: the sum of several linear maps of the same rows into the
 * same `out` features (weights stored [out, inᵢ]), as one output tensor. When every operand has
 * one dtype and bias is [out], the bias is broadcast into the output and each product
 * accumulates into it (a GEMM with β = 1, as PyTorch's addmm): no [rows, out] intermediate per
 * term and no separate pass for the bias or the sum. Otherwise the products are summed with
 * `add` (promoting dtypes). LoRA's base + B·A·x is `linearSum([[x, W], [x·Aᵀ·s, B]], bias)`.
 */
export function linearSum(terms: readonly (readonly [x: Tensor, weight: Tensor])[], bias?: Tensor | null): Tensor {
  const op = 'linear';
  if (terms.length === 0) throw new Error(`${op}: needs at least one (input, weight) pair`);
  const tensors = terms.flat();
  backendOf(op, bias ? [...tensors, bias] : tensors);
  const [x0, w0] = terms[0]!;
  const out = w0.shape[0];
  const dtype = x0.dtype;
  const fused =
    out !== undefined &&
    (!bias || (bias.rank === 1 && bias.shape[0] === out && bias.dtype === dtype)) &&
    terms.every(
      ([x, w]) =>
        x.dtype === dtype &&
        w.dtype === dtype &&
        x.rank >= 2 &&
        w.rank === 2 &&
        w.shape[0] === out &&
        x.shape[x.rank - 1] === w.shape[1] &&
        x.rank === x0.rank &&
        x.shape.every((d, i) => i === x.rank - 1 || d === x0.shape[i]),
    );
  if (!fused) {
    // Mixed dtypes or shapes the fused form does not cover: matmul's checks and messages, add's promotion.
    let y = matmul(x0, w0, { transB: true });
    for (const [x, w] of terms.slice(1)) {
      const term = matmul(x, w, { transB: true });
      const sum = add(y, term);
      y.dispose();
      term.dispose();
      y = sum;
    }
    if (bias) {
      const sum = add(y, bias);
      y.dispose();
      y = sum;
    }
    return y;
  }
  requireFloat(op, x0);
  const backend = backendOf(op, [x0]);
  const outShape = [...x0.shape.slice(0, -1), out];
  const y = alloc(backend, outShape, dtype, op);
  if (y.size > 0) {
    let written = false;
    if (bias) {
      backend.copy(y.buffer(), bias.buffer(op), broadcastView(bias.shape, outShape));
      written = true;
    }
    const rows = y.size / out;
    for (const [x, w] of terms) {
      const k = w.shape[1]!;
      if (k === 0) continue; // an empty reduction adds nothing
      backend.matmul(y.buffer(), x.buffer(op), w.buffer(op), {
        batch: 1,
        m: rows,
        n: out,
        k,
        transA: false,
        transB: true,
        strideA: 0,
        strideB: 0,
        strideOut: 0,
        alpha: 1,
        accumulate: written,
      });
      written = true;
    }
    if (!written) backend.fill(y.buffer(), 0);
  }
  const inputs = bias ? [...tensors, bias] : tensors;
  if (needsGrad(inputs)) {
    // dxᵢ = g · wᵢ needs wᵢ; dwᵢ = gᵀ · xᵢ (summed over every leading dimension) needs xᵢ.
    const saved = terms.map(([x, w]) => [w.requiresGrad ? save(x) : null, x.requiresGrad ? save(w) : null] as const);
    record(
      op,
      inputs,
      [y],
      saved.flat().filter((t) => t !== null),
      ([g]) => {
        const grads: (Tensor | null)[] = [];
        for (const [i, [x, w]] of terms.entries()) {
          const [xs, ws] = saved[i]!;
          grads.push(ws ? gemm(g!, ws, false, false, x.shape) : null, xs ? gemm(g!, xs, true, false, w.shape) : null);
        }
        if (bias) grads.push(bias.requiresGrad ? sumTo(g!, bias.shape) : null);
        return grads;
      },
    );
  }
  return y;
}
