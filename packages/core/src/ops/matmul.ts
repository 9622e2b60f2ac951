import { needsGrad, record, save } from '../autograd/tape.js';
import { formatShape, shapeSize, type Tensor } from '../tensor.js';
import { add } from './elementwise.js';
import { alloc, backendOf, promote, requireFloat } from './util.js';

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
  const xw = matmul(x, weight, { transB: true });
  if (!bias) return xw;
  const y = add(xw, bias);
  xw.dispose();
  return y;
}
