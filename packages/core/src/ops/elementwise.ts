import { needsGrad, record, save } from '../autograd/tape.js';
import type { BinaryOp, UnaryOp } from '../backend.js';
import type { DType } from '../dtype.js';
import { full, type Tensor } from '../tensor.js';
import { sumTo } from './shape.js';
import { alloc, backendOf, broadcastShapes, broadcastView, promote, requireFloat } from './util.js';

function binary(op: BinaryOp, a: Tensor, b: Tensor, outDtype?: DType): Tensor {
  const backend = backendOf(op, [a, b]);
  const dtype = outDtype ?? promote(op, a, b);
  const shape = broadcastShapes(op, a.shape, b.shape);
  const y = alloc(backend, shape, dtype, op);
  if (y.size > 0) backend.binary(op, y.buffer(), a.buffer(op), broadcastView(a.shape, shape), b.buffer(op), broadcastView(b.shape, shape));
  return y;
}

/**
 * a + b with broadcasting. The result has the promoted dtype, or `opts.dtype`: the sum is taken
 * in float32 and rounded once to it (a bfloat16 activation plus a float32 adapter output straight
 * into bfloat16, without a float32 tensor in between).
 */
export function add(a: Tensor, b: Tensor, opts: { dtype?: DType } = {}): Tensor {
  if (opts.dtype !== undefined && opts.dtype !== 'float32' && opts.dtype !== 'float16' && opts.dtype !== 'bfloat16') {
    throw new Error(`add: dtype must be a float dtype (float32, float16, bfloat16), got ${opts.dtype}`);
  }
  const y = binary('add', a, b, opts.dtype);
  if (needsGrad([a, b])) {
    record('add', [a, b], [y], [], ([g]) => [a.requiresGrad ? sumTo(g!, a.shape) : null, b.requiresGrad ? sumTo(g!, b.shape) : null]);
  }
  return y;
}

/** a − b with broadcasting. */
export function sub(a: Tensor, b: Tensor): Tensor {
  const y = binary('sub', a, b);
  if (needsGrad([a, b])) {
    record('sub', [a, b], [y], [], ([g]) => {
      let db: Tensor | null = null;
      if (b.requiresGrad) {
        const s = sumTo(g!, b.shape);
        db = affine(s, -1, 0);
        s.dispose();
      }
      return [a.requiresGrad ? sumTo(g!, a.shape) : null, db];
    });
  }
  return y;
}

/** a · b elementwise with broadcasting. */
export function mul(a: Tensor, b: Tensor): Tensor {
  const y = binary('mul', a, b);
  if (needsGrad([a, b])) {
    const as = b.requiresGrad ? save(a) : null;
    const bs = a.requiresGrad ? save(b) : null;
    record(
      'mul',
      [a, b],
      [y],
      [as, bs].filter((t) => t !== null),
      ([g]) => {
        const grad = (other: Tensor, shape: readonly number[]): Tensor => {
          const prod = binary('mul', g!, other);
          const r = sumTo(prod, shape);
          prod.dispose();
          return r;
        };
        return [bs ? grad(bs, a.shape) : null, as ? grad(as, b.shape) : null];
      },
    );
  }
  return y;
}

/** a / b elementwise with broadcasting. */
export function div(a: Tensor, b: Tensor): Tensor {
  const y = binary('div', a, b);
  if (needsGrad([a, b])) {
    const bs = save(b);
    const ys = b.requiresGrad ? save(y) : null;
    record('div', [a, b], [y], ys ? [bs, ys] : [bs], ([g]) => {
      let da: Tensor | null = null;
      let db: Tensor | null = null;
      const q = binary('div', g!, bs);
      if (a.requiresGrad) da = sumTo(q, a.shape);
      if (ys) {
        // d(a/b)/db = −(a/b)/b = −y/b
        const t = binary('mul', q, ys);
        const s = sumTo(t, b.shape);
        db = affine(s, -1, 0);
        t.dispose();
        s.dispose();
      }
      q.dispose();
      return [da, db];
    });
  }
  return y;
}

/** Elementwise maximum (no gradient). */
export function maximum(a: Tensor, b: Tensor): Tensor {
  if (needsGrad([a, b])) throw new Error('maximum: has no gradient; call it inside noGrad() or on tensors that do not require grad');
  return binary('max', a, b);
}

/** Elementwise minimum (no gradient). */
export function minimum(a: Tensor, b: Tensor): Tensor {
  if (needsGrad([a, b])) throw new Error('minimum: has no gradient; call it inside noGrad() or on tensors that do not require grad');
  return binary('min', a, b);
}

/** x · alpha + beta. */
export function affine(x: Tensor, alpha: number, beta: number): Tensor {
  const op = 'affine';
  const backend = backendOf(op, [x]);
  requireFloat(op, x);
  const y = alloc(backend, x.shape, x.dtype, op);
  if (y.size > 0) backend.affine(y.buffer(), x.buffer(op), alpha, beta);
  if (needsGrad([x])) record(op, [x], [y], [], ([g]) => [affine(g!, alpha, 0)]);
  return y;
}

export function scale(x: Tensor, s: number): Tensor {
  return affine(x, s, 0);
}

export function neg(x: Tensor): Tensor {
  return affine(x, -1, 0);
}

/** Ops whose backward reads the output y rather than the input x. */
const USES_OUTPUT: ReadonlySet<UnaryOp> = new Set(['exp', 'sqrt', 'rsqrt', 'sigmoid', 'tanh']);

export function unary(op: UnaryOp, x: Tensor): Tensor {
  const backend = backendOf(op, [x]);
  requireFloat(op, x);
  const y = alloc(backend, x.shape, x.dtype, op);
  if (y.size > 0) backend.unary(op, y.buffer(), x.buffer(op));
  if (needsGrad([x])) {
    const saved = USES_OUTPUT.has(op) ? save(y) : save(x);
    record(op, [x], [y], [saved], ([g]) => {
      const dx = alloc(backend, x.shape, g!.dtype, op);
      if (dx.size > 0) backend.unaryBackward(op, dx.buffer(), g!.buffer(op), saved.buffer(op), saved.buffer(op));
      return [dx];
    });
  }
  return y;
}

export const exp = (x: Tensor): Tensor => unary('exp', x);
export const log = (x: Tensor): Tensor => unary('log', x);
export const sqrt = (x: Tensor): Tensor => unary('sqrt', x);
export const rsqrt = (x: Tensor): Tensor => unary('rsqrt', x);
export const square = (x: Tensor): Tensor => unary('square', x);
export const abs = (x: Tensor): Tensor => unary('abs', x);
export const silu = (x: Tensor): Tensor => unary('silu', x);
export const sigmoid = (x: Tensor): Tensor => unary('sigmoid', x);
export const tanh = (x: Tensor): Tensor => unary('tanh', x);
export const relu = (x: Tensor): Tensor => unary('relu', x);

/** A tensor of ones shaped like `t` (used to seed backward). */
export function onesLike(t: Tensor): Tensor {
  return full(t.shape, 1, { backend: t.backend, dtype: t.dtype === 'int32' ? 'float32' : t.dtype });
}
