/**
 * Elementwise float ops. Inputs must have exactly as many elements as the output. Values are computed in double precision and stored as float32, then
 * rounded to the output's storage dtype. Inputs and outputs may be the same buffer.
 */
import type { BinaryOp, DeviceBuffer, UnaryOp, View } from '@peft/core';
import { arg, type CpuContext, finite, same } from '../buffer.js';
import { loadF32, outF32, storeF32 } from '../storage.js';
import { planViews } from '../view.js';

export function unary(ctx: CpuContext, op: UnaryOp, out: DeviceBuffer, x: DeviceBuffer): void {
  const o = arg(ctx, `unary(${op})`, 'out', out, 0, 'float');
  const n = o.size;
  const xs = loadF32(same(ctx, `unary(${op})`, 'x', x, n, 'float'), 0, n);
  const ys = outF32(o, n);
  switch (op) {
    case 'neg':
      for (let i = 0; i < n; i++) ys[i] = -xs[i];
      break;
    case 'exp':
      for (let i = 0; i < n; i++) ys[i] = Math.exp(xs[i]);
      break;
    case 'log':
      for (let i = 0; i < n; i++) ys[i] = Math.log(xs[i]);
      break;
    case 'sqrt':
      for (let i = 0; i < n; i++) ys[i] = Math.sqrt(xs[i]);
      break;
    case 'rsqrt':
      for (let i = 0; i < n; i++) ys[i] = 1 / Math.sqrt(xs[i]);
      break;
    case 'square':
      for (let i = 0; i < n; i++) ys[i] = xs[i] * xs[i];
      break;
    case 'abs':
      for (let i = 0; i < n; i++) ys[i] = Math.abs(xs[i]);
      break;
    case 'silu':
      for (let i = 0; i < n; i++) ys[i] = xs[i] / (1 + Math.exp(-xs[i]));
      break;
    case 'sigmoid':
      for (let i = 0; i < n; i++) ys[i] = 1 / (1 + Math.exp(-xs[i]));
      break;
    case 'tanh':
      for (let i = 0; i < n; i++) ys[i] = Math.tanh(xs[i]);
      break;
    case 'relu':
      for (let i = 0; i < n; i++) ys[i] = Math.max(xs[i], 0);
      break;
    default:
      throw new Error(`unary: unknown op ${JSON.stringify(op)}`);
  }
  storeF32(o, ys);
}

/**
 * dx = dy · f'(x). exp, sqrt, rsqrt, sigmoid and tanh read the forward output y; the others read
 * x. Conventions: abs'(0) = 0, relu'(0) = 0.
 */
export function unaryBackward(ctx: CpuContext, op: UnaryOp, dx: DeviceBuffer, dy: DeviceBuffer, x: DeviceBuffer, y: DeviceBuffer): void {
  const kernel = `unaryBackward(${op})`;
  const o = arg(ctx, kernel, 'dx', dx, 0, 'float');
  const n = o.size;
  const g = loadF32(same(ctx, kernel, 'dy', dy, n, 'float'), 0, n);
  const usesY = op === 'exp' || op === 'sqrt' || op === 'rsqrt' || op === 'sigmoid' || op === 'tanh';
  const v = usesY ? loadF32(same(ctx, kernel, 'y', y, n, 'float'), 0, n) : loadF32(same(ctx, kernel, 'x', x, n, 'float'), 0, n);
  const d = outF32(o, n);
  switch (op) {
    case 'neg':
      for (let i = 0; i < n; i++) d[i] = -g[i];
      break;
    case 'exp':
      for (let i = 0; i < n; i++) d[i] = g[i] * v[i];
      break;
    case 'log':
      for (let i = 0; i < n; i++) d[i] = g[i] / v[i];
      break;
    case 'sqrt':
      for (let i = 0; i < n; i++) d[i] = (0.5 * g[i]) / v[i];
      break;
    case 'rsqrt': // d/dx x^(-1/2) = -1/2 · y³
      for (let i = 0; i < n; i++) d[i] = -0.5 * g[i] * v[i] * v[i] * v[i];
      break;
    case 'square':
      for (let i = 0; i < n; i++) d[i] = 2 * v[i] * g[i];
      break;
    case 'abs':
      for (let i = 0; i < n; i++) d[i] = v[i] > 0 ? g[i] : v[i] < 0 ? -g[i] : v[i] === 0 ? 0 : Number.NaN;
      break;
    case 'silu':
      for (let i = 0; i < n; i++) {
        const s = 1 / (1 + Math.exp(-v[i]));
        d[i] = g[i] * s * (1 + v[i] * (1 - s));
      }
      break;
    case 'sigmoid':
      for (let i = 0; i < n; i++) d[i] = g[i] * v[i] * (1 - v[i]);
      break;
    case 'tanh':
      for (let i = 0; i < n; i++) d[i] = g[i] * (1 - v[i] * v[i]);
      break;
    case 'relu':
      for (let i = 0; i < n; i++) d[i] = v[i] > 0 ? g[i] : 0;
      break;
    default:
      throw new Error(`unaryBackward: unknown op ${JSON.stringify(op)}`);
  }
  storeF32(o, d);
}

/** out[i] = x[i]·alpha + beta. */
export function affine(ctx: CpuContext, out: DeviceBuffer, x: DeviceBuffer, alpha: number, beta: number): void {
  finite('affine', 'alpha', alpha);
  finite('affine', 'beta', beta);
  const o = arg(ctx, 'affine', 'out', out, 0, 'float');
  const n = o.size;
  const xs = loadF32(same(ctx, 'affine', 'x', x, n, 'float'), 0, n);
  const ys = outF32(o, n);
  for (let i = 0; i < n; i++) ys[i] = xs[i] * alpha + beta;
  storeF32(o, ys);
}

/** out (contiguous, the views' shape) = a[aView(i)] op b[bView(i)]. max/min propagate NaN like torch.maximum. */
export function binary(ctx: CpuContext, op: BinaryOp, out: DeviceBuffer, a: DeviceBuffer, aView: View, b: DeviceBuffer, bView: View): void {
  const kernel = `binary(${op})`;
  const ab = arg(ctx, kernel, 'a', a, 0, 'float');
  const bb = arg(ctx, kernel, 'b', b, 0, 'float');
  const plan = planViews(kernel, aView.shape, [aView, bView], ['a', 'b'], [ab.size, bb.size]);
  const o = arg(ctx, kernel, 'out', out, plan.count, 'float');
  if (plan.count === 0) return;
  // Decode only the range each view touches; `shift` maps buffer indices into that range.
  const av = loadF32(ab, plan.lo[0], plan.hi[0] - plan.lo[0] + 1);
  const bv = loadF32(bb, plan.lo[1], plan.hi[1] - plan.lo[1] + 1);
  const aShift = plan.lo[0];
  const bShift = plan.lo[1];
  // out may alias a or b: then the result goes through a scratch array.
  const ys = o === ab || o === bb ? new Float32Array(plan.count) : outF32(o, plan.count);
  const { rows, rowLen } = plan;
  const [sa, sb] = plan.step;
  let k = 0;
  for (let r = 0; r < rows; r++) {
    let i = plan.rowStart[0][r] - aShift;
    let j = plan.rowStart[1][r] - bShift;
    switch (op) {
      case 'add':
        for (let c = 0; c < rowLen; c++, i += sa, j += sb) ys[k++] = av[i] + bv[j];
        break;
      case 'sub':
        for (let c = 0; c < rowLen; c++, i += sa, j += sb) ys[k++] = av[i] - bv[j];
        break;
      case 'mul':
        for (let c = 0; c < rowLen; c++, i += sa, j += sb) ys[k++] = av[i] * bv[j];
        break;
      case 'div':
        for (let c = 0; c < rowLen; c++, i += sa, j += sb) ys[k++] = av[i] / bv[j];
        break;
      case 'max':
        for (let c = 0; c < rowLen; c++, i += sa, j += sb) ys[k++] = Math.max(av[i], bv[j]);
        break;
      case 'min':
        for (let c = 0; c < rowLen; c++, i += sa, j += sb) ys[k++] = Math.min(av[i], bv[j]);
        break;
      default:
        throw new Error(`binary: unknown op ${JSON.stringify(op)}`);
    }
  }
  storeF32(o, ys);
}
