/**
 * Elementwise float ops. Inputs must have exactly as many elements as the output. Values are computed in double precision and stored as float32, then
 * rounded to the output's storage dtype. Inputs and outputs may be the same buffer. e^x is
 * `fastExp` (relative error below 2e-12), tanh is built on it.
 *
 * `affine` and `binary` run in WebAssembly SIMD where the engine has it (./elementwise-wasm.ts),
 * with the same results bit for bit: affine in float64 lanes; binary in float32 lanes, since for
 * float32 inputs +, −, ×, ÷ rounded once to float32 equal the double result rounded to float32,
 * and f32x4.max / min propagate NaN and order −0 < +0 like Math.max / Math.min. The loops here
 * are their meaning, and run without it and for views it does not cover.
 */
import { type BinaryOp, type DeviceBuffer, type KernelFamily, type UnaryOp, unaryBackwardReadsY, type View } from '@peft/core';
import type { CpuBuffer, CpuContext } from '../buffer.js';
import { at, chunkOf, flushF32, readF32, scratch, storeF32, writeF32 } from '../storage.js';
import { planViews, type ViewPlan } from '../view.js';
import { binaryWasm, elementwiseWasm, runChunks, runParallel } from './elementwise-wasm.js';
import { fastExp } from './math.js';

/** tanh through e^(−2|x|), with its Taylor series near 0 where 1 − e^(−2|x|) would cancel (relative error below 1e-11). */
function tanh(x: number): number {
  const a = Math.abs(x);
  if (a < 0.01) {
    const x2 = x * x;
    return x * (1 + x2 * (-1 / 3 + x2 * (2 / 15)));
  }
  const e = fastExp(-2 * a);
  const t = (1 - e) / (1 + e);
  return x < 0 ? -t : t;
}

function unaryLoop(op: UnaryOp, len: number, ys: Float32Array, yi: number, xs: Float32Array, xi: number): void {
  switch (op) {
    case 'neg':
      for (let i = 0; i < len; i++) ys[yi + i] = -xs[xi + i];
      break;
    case 'exp':
      for (let i = 0; i < len; i++) ys[yi + i] = fastExp(xs[xi + i]);
      break;
    case 'log':
      for (let i = 0; i < len; i++) ys[yi + i] = Math.log(xs[xi + i]);
      break;
    case 'sqrt':
      for (let i = 0; i < len; i++) ys[yi + i] = Math.sqrt(xs[xi + i]);
      break;
    case 'rsqrt':
      for (let i = 0; i < len; i++) ys[yi + i] = 1 / Math.sqrt(xs[xi + i]);
      break;
    case 'square':
      for (let i = 0; i < len; i++) {
        const v = xs[xi + i];
        ys[yi + i] = v * v;
      }
      break;
    case 'abs':
      for (let i = 0; i < len; i++) ys[yi + i] = Math.abs(xs[xi + i]);
      break;
    case 'silu':
      for (let i = 0; i < len; i++) {
        const v = xs[xi + i];
        ys[yi + i] = v / (1 + fastExp(-v));
      }
      break;
    case 'sigmoid':
      for (let i = 0; i < len; i++) ys[yi + i] = 1 / (1 + fastExp(-xs[xi + i]));
      break;
    case 'tanh':
      for (let i = 0; i < len; i++) ys[yi + i] = tanh(xs[xi + i]);
      break;
    case 'relu':
      for (let i = 0; i < len; i++) ys[yi + i] = Math.max(xs[xi + i], 0);
      break;
    default:
      throw new Error(`internal: unary has no loop for op ${JSON.stringify(op)} (core's check lets only known ops through)`);
  }
}

function unary(_ctx: CpuContext, op: UnaryOp, out: DeviceBuffer, x: DeviceBuffer): void {
  const o = out as CpuBuffer;
  const n = o.size;
  const xb = x as CpuBuffer;
  const step = chunkOf(n, o, xb);
  for (let s = 0; s < n; s += step) {
    const len = Math.min(step, n - s);
    const xs = readF32(xb, s, len, 0);
    const ys = writeF32(o, len, 1);
    unaryLoop(op, len, ys, at(o, s), xs, at(xb, s));
    flushF32(o, s, len, ys);
  }
}

function unaryBackwardLoop(
  op: UnaryOp,
  len: number,
  d: Float32Array,
  di: number,
  g: Float32Array,
  gi: number,
  v: Float32Array,
  vi: number,
): void {
  switch (op) {
    case 'neg':
      for (let i = 0; i < len; i++) d[di + i] = -g[gi + i];
      break;
    case 'exp':
      for (let i = 0; i < len; i++) d[di + i] = g[gi + i] * v[vi + i];
      break;
    case 'log':
      for (let i = 0; i < len; i++) d[di + i] = g[gi + i] / v[vi + i];
      break;
    case 'sqrt':
      for (let i = 0; i < len; i++) d[di + i] = (0.5 * g[gi + i]) / v[vi + i];
      break;
    case 'rsqrt': // d/dx x^(-1/2) = -1/2 · y³
      for (let i = 0; i < len; i++) {
        const y = v[vi + i];
        d[di + i] = -0.5 * g[gi + i] * y * y * y;
      }
      break;
    case 'square':
      for (let i = 0; i < len; i++) d[di + i] = 2 * v[vi + i] * g[gi + i];
      break;
    case 'abs':
      for (let i = 0; i < len; i++) {
        const x = v[vi + i];
        const gv = g[gi + i];
        d[di + i] = x > 0 ? gv : x < 0 ? -gv : x === 0 ? 0 : Number.NaN;
      }
      break;
    case 'silu':
      for (let i = 0; i < len; i++) {
        const x = v[vi + i];
        const s = 1 / (1 + fastExp(-x));
        d[di + i] = g[gi + i] * s * (1 + x * (1 - s));
      }
      break;
    case 'sigmoid':
      for (let i = 0; i < len; i++) {
        const y = v[vi + i];
        d[di + i] = g[gi + i] * y * (1 - y);
      }
      break;
    case 'tanh':
      for (let i = 0; i < len; i++) {
        const y = v[vi + i];
        d[di + i] = g[gi + i] * (1 - y * y);
      }
      break;
    case 'relu':
      for (let i = 0; i < len; i++) d[di + i] = v[vi + i] > 0 ? g[gi + i] : 0;
      break;
    default:
      throw new Error(`internal: unaryBackward has no loop for op ${JSON.stringify(op)} (core's check lets only known ops through)`);
  }
}

/**
 * dx = dy · f'(x). exp, sqrt, rsqrt, sigmoid and tanh read the forward output y; the others read
 * x. Conventions: abs'(0) = 0, relu'(0) = 0.
 */
function unaryBackward(_ctx: CpuContext, op: UnaryOp, dx: DeviceBuffer, dy: DeviceBuffer, x: DeviceBuffer, y: DeviceBuffer): void {
  const o = dx as CpuBuffer;
  const n = o.size;
  const gb = dy as CpuBuffer;
  const vb = (unaryBackwardReadsY(op) ? y : x) as CpuBuffer;
  const step = chunkOf(n, o, gb, vb);
  for (let s = 0; s < n; s += step) {
    const len = Math.min(step, n - s);
    const g = readF32(gb, s, len, 0);
    const v = readF32(vb, s, len, 1);
    const d = writeF32(o, len, 2);
    unaryBackwardLoop(op, len, d, at(o, s), g, at(gb, s), v, at(vb, s));
    flushF32(o, s, len, d);
  }
}

/** out[i] = x[i]·alpha + beta. */
function affine(ctx: CpuContext, out: DeviceBuffer, x: DeviceBuffer, alpha: number, beta: number): void {
  const o = out as CpuBuffer;
  const n = o.size;
  const xb = x as CpuBuffer;
  const w = elementwiseWasm();
  if (w !== null) {
    const p = w.ptr;
    if (runParallel(ctx, n, [xb], [o], 'affine', [{ out: 0 }, { in: 0 }, alpha, beta, 'start', 'end'])) return;
    runChunks(w, n, [xb], [o], (s, e) => w.fns.affine(p[1], p[0], alpha, beta, s, e));
    return;
  }
  const step = chunkOf(n, o, xb);
  for (let s = 0; s < n; s += step) {
    const len = Math.min(step, n - s);
    const xs = readF32(xb, s, len, 0);
    const ys = writeF32(o, len, 1);
    const xi = at(xb, s);
    const yi = at(o, s);
    for (let i = 0; i < len; i++) ys[yi + i] = xs[xi + i] * alpha + beta;
    flushF32(o, s, len, ys);
  }
}

/** ys[yi + c] = as[ai + c·sa] op bs[bi + c·sb] for c < len. */
function binaryRow(
  op: BinaryOp,
  len: number,
  ys: Float32Array,
  yi: number,
  as: Float32Array,
  ai: number,
  sa: number,
  bs: Float32Array,
  bi: number,
  sb: number,
): void {
  if (sa === 1 && sb === 1) {
    switch (op) {
      case 'add':
        for (let c = 0; c < len; c++) ys[yi + c] = as[ai + c] + bs[bi + c];
        return;
      case 'sub':
        for (let c = 0; c < len; c++) ys[yi + c] = as[ai + c] - bs[bi + c];
        return;
      case 'mul':
        for (let c = 0; c < len; c++) ys[yi + c] = as[ai + c] * bs[bi + c];
        return;
      case 'div':
        for (let c = 0; c < len; c++) ys[yi + c] = as[ai + c] / bs[bi + c];
        return;
      case 'max':
        for (let c = 0; c < len; c++) ys[yi + c] = Math.max(as[ai + c], bs[bi + c]);
        return;
      case 'min':
        for (let c = 0; c < len; c++) ys[yi + c] = Math.min(as[ai + c], bs[bi + c]);
        return;
    }
  }
  switch (op) {
    case 'add':
      for (let c = 0; c < len; c++) ys[yi + c] = as[ai + c * sa] + bs[bi + c * sb];
      return;
    case 'sub':
      for (let c = 0; c < len; c++) ys[yi + c] = as[ai + c * sa] - bs[bi + c * sb];
      return;
    case 'mul':
      for (let c = 0; c < len; c++) ys[yi + c] = as[ai + c * sa] * bs[bi + c * sb];
      return;
    case 'div':
      for (let c = 0; c < len; c++) ys[yi + c] = as[ai + c * sa] / bs[bi + c * sb];
      return;
    case 'max':
      for (let c = 0; c < len; c++) ys[yi + c] = Math.max(as[ai + c * sa], bs[bi + c * sb]);
      return;
    case 'min':
      for (let c = 0; c < len; c++) ys[yi + c] = Math.min(as[ai + c * sa], bs[bi + c * sb]);
      return;
    default:
      throw new Error(`internal: binary has no loop for op ${JSON.stringify(op)} (core's check lets only known ops through)`);
  }
}

/**
 * A view's elements as float32 for strided reads: a float32 buffer itself (shift 0), else the
 * range [lo, hi] it touches decoded into scratch `slot` (index − lo).
 */
function viewRange(buf: CpuBuffer, plan: ViewPlan, v: number, slot: number): { values: Float32Array; shift: number } {
  if (buf.dtype === 'float32') return { values: buf.data as Float32Array, shift: 0 };
  const lo = plan.lo[v];
  return { values: readF32(buf, lo, plan.hi[v] - lo + 1, slot), shift: lo };
}

/** out (contiguous, the views' shape) = a[aView(i)] op b[bView(i)]. max/min propagate NaN like torch.maximum. */
function binary(ctx: CpuContext, op: BinaryOp, out: DeviceBuffer, a: DeviceBuffer, aView: View, b: DeviceBuffer, bView: View): void {
  const ab = a as CpuBuffer;
  const bb = b as CpuBuffer;
  const plan = planViews(aView.shape, [aView, bView]);
  const o = out as CpuBuffer;
  if (plan.count === 0) return;
  const w = elementwiseWasm();
  if (w !== null && binaryWasm(w, op, o, ab, bb, plan, ctx.pool)) return;
  const { rows, rowLen, count } = plan;
  const [sa, sb] = plan.step;
  // Element indices are below 2^32 (the longest typed array): `>>> 0` keeps them integers for V8.
  const a0 = plan.rowStart[0][0] >>> 0;
  const b0 = plan.rowStart[1][0] >>> 0;
  // Both views one contiguous run: chunk by chunk like the other elementwise ops. out may be a or b
  // read in the same positions (each element is read before it is written), not shifted.
  if (rows === 1 && sa === 1 && sb === 1 && (o !== ab || a0 === 0) && (o !== bb || b0 === 0)) {
    const step = chunkOf(count, o, ab, bb);
    for (let s = 0; s < count; s += step) {
      const len = Math.min(step, count - s);
      const as = readF32(ab, a0 + s, len, 0);
      const bs = readF32(bb, b0 + s, len, 1);
      const ys = writeF32(o, len, 2);
      binaryRow(op, len, ys, at(o, s), as, at(ab, a0 + s), 1, bs, at(bb, b0 + s), 1);
      flushF32(o, s, len, ys);
    }
    return;
  }
  const startsA = plan.rowStart[0];
  const startsB = plan.rowStart[1];
  if (o === ab || o === bb) {
    // out aliases a or b under another layout: the result waits in scratch until all is read.
    const A = viewRange(ab, plan, 0, 0);
    const B = viewRange(bb, plan, 1, 1);
    const ys = scratch(2, count);
    for (let r = 0, k = 0; r < rows; r++, k += rowLen) {
      binaryRow(op, rowLen, ys, k, A.values, (startsA[r] - A.shift) >>> 0, sa, B.values, (startsB[r] - B.shift) >>> 0, sb);
    }
    storeF32(o, ys.length === count ? ys : ys.subarray(0, count));
    return;
  }
  // 16-bit views with contiguous (or broadcast) rows of some length are decoded row by row; the others at once.
  const rowA = ab.dtype !== 'float32' && (sa === 1 || sa === 0) && rowLen >= 16;
  const rowB = bb.dtype !== 'float32' && (sb === 1 || sb === 0) && rowLen >= 16;
  const A = rowA ? null : viewRange(ab, plan, 0, 0);
  const B = rowB ? null : viewRange(bb, plan, 1, 1);
  for (let r = 0, k = 0; r < rows; r++, k += rowLen) {
    const as = A === null ? readF32(ab, startsA[r] >>> 0, sa === 1 ? rowLen : 1, 0) : A.values;
    const ai = A === null ? 0 : (startsA[r] - A.shift) >>> 0;
    const bs = B === null ? readF32(bb, startsB[r] >>> 0, sb === 1 ? rowLen : 1, 1) : B.values;
    const bi = B === null ? 0 : (startsB[r] - B.shift) >>> 0;
    const ys = writeF32(o, rowLen, 2);
    binaryRow(op, rowLen, ys, at(o, k), as, ai, sa, bs, bi, sb);
    flushF32(o, k, rowLen, ys);
  }
}

/** The elementwise kernels; their arguments are checked in core (kernelChecks). */
export const elementwiseKernels = { unary, unaryBackward, affine, binary } satisfies KernelFamily<CpuContext>;
