/**
 * Elementwise float ops: unary (and backward), affine, strided binary. Computed in float32,
 * rounded to the output's storage dtype. An output may alias an input (the runtime reads a copy).
 */
import type { BinaryOp, DeviceBuffer, UnaryOp, View } from '@peft/core';
import { arg, finite, same } from '../buffer.js';
import { type Ctx, map, planStrided, stridedIndex, WG } from './common.js';
import { MATH } from './math.js';

const UNARY: Record<UnaryOp, string> = {
  neg: '-x',
  exp: 'exp(x)',
  log: 'log(x)',
  sqrt: 'sqrt(x)',
  rsqrt: '1.0 / sqrt(x)',
  square: 'x * x',
  abs: 'abs(x)',
  silu: 'x * sigmoid(x)',
  sigmoid: 'sigmoid(x)',
  tanh: 'tanh_safe(x)',
  relu: 'max(x, 0.0)',
};

export function unary(ctx: Ctx, op: UnaryOp, out: DeviceBuffer, x: DeviceBuffer): void {
  const K = `unary(${op})`;
  if (!(op in UNARY)) throw new Error(`unary: unknown op ${JSON.stringify(op)}`);
  const o = arg(ctx.owner, K, 'out', out, 0, 'float');
  const xb = same(ctx.owner, K, 'x', x, o.size, 'float');
  map(
    ctx,
    K,
    o.size,
    [
      { name: 'out', buf: o, access: 'write' },
      { name: 'x', buf: xb, access: 'read' },
    ],
    `let x = ld_x(i); st_out(i, ${UNARY[op]});`,
    [],
    MATH,
  );
}

/** f'(x) · g, from v = y for exp, sqrt, rsqrt, sigmoid, tanh and v = x otherwise. abs'(0) = relu'(0) = 0. */
const BACKWARD: Record<UnaryOp, string> = {
  neg: '-g',
  exp: 'g * v',
  log: 'g / v',
  sqrt: '0.5 * g / v',
  rsqrt: '-0.5 * g * v * v * v',
  square: '2.0 * v * g',
  abs: 'select(select(select(g - g + nan_f(), 0.0, v == 0.0), -g, v < 0.0), g, v > 0.0)',
  silu: 'g * sigmoid(v) * (1.0 + v * (1.0 - sigmoid(v)))',
  sigmoid: 'g * v * (1.0 - v)',
  tanh: 'g * (1.0 - v * v)',
  relu: 'select(0.0, g, v > 0.0)',
};

export function unaryBackward(ctx: Ctx, op: UnaryOp, dx: DeviceBuffer, dy: DeviceBuffer, x: DeviceBuffer, y: DeviceBuffer): void {
  const K = `unaryBackward(${op})`;
  if (!(op in BACKWARD)) throw new Error(`unaryBackward: unknown op ${JSON.stringify(op)}`);
  const o = arg(ctx.owner, K, 'dx', dx, 0, 'float');
  const n = o.size;
  const g = same(ctx.owner, K, 'dy', dy, n, 'float');
  const usesY = op === 'exp' || op === 'sqrt' || op === 'rsqrt' || op === 'sigmoid' || op === 'tanh';
  const v = usesY ? same(ctx.owner, K, 'y', y, n, 'float') : same(ctx.owner, K, 'x', x, n, 'float');
  map(
    ctx,
    K,
    n,
    [
      { name: 'dx', buf: o, access: 'write' },
      { name: 'dy', buf: g, access: 'read' },
      { name: 'v', buf: v, access: 'read' },
    ],
    `let g = ld_dy(i); let v = ld_v(i); st_dx(i, ${BACKWARD[op]});`,
    [],
    MATH,
  );
}

/** out[i] = x[i]·alpha + beta. */
export function affine(ctx: Ctx, out: DeviceBuffer, x: DeviceBuffer, alpha: number, beta: number): void {
  finite('affine', 'alpha', alpha);
  finite('affine', 'beta', beta);
  const o = arg(ctx.owner, 'affine', 'out', out, 0, 'float');
  const xb = same(ctx.owner, 'affine', 'x', x, o.size, 'float');
  map(
    ctx,
    'affine',
    o.size,
    [
      { name: 'out', buf: o, access: 'write' },
      { name: 'x', buf: xb, access: 'read' },
    ],
    'st_out(i, ld_x(i) * P.alpha + P.beta);',
    [
      ['alpha', 'f32', alpha],
      ['beta', 'f32', beta],
    ],
  );
}

const BINARY: Record<BinaryOp, string> = {
  add: 'a + b',
  sub: 'a - b',
  mul: 'a * b',
  div: 'a / b',
  // max/min propagate NaN like torch.maximum (WGSL's max/min leave NaN unspecified).
  max: 'select(max(a, b), a + b, is_nan(a) || is_nan(b))',
  min: 'select(min(a, b), a + b, is_nan(a) || is_nan(b))',
};

/** out (contiguous, the views' shape) = a[aView(i)] op b[bView(i)]. */
export function binary(ctx: Ctx, op: BinaryOp, out: DeviceBuffer, a: DeviceBuffer, aView: View, b: DeviceBuffer, bView: View): void {
  const K = `binary(${op})`;
  if (!(op in BINARY)) throw new Error(`binary: unknown op ${JSON.stringify(op)}`);
  const ab = arg(ctx.owner, K, 'a', a, 0, 'float');
  const bb = arg(ctx.owner, K, 'b', b, 0, 'float');
  const plan = planStrided(K, aView.shape, [aView, bView], ['a', 'b'], [ab.size, bb.size]);
  const o = arg(ctx.owner, K, 'out', out, plan.count, 'float');
  const ix = stridedIndex(plan);
  ctx.rt.launch({
    kernel: K,
    params: [['n', 'u32', plan.count], ...ix.params],
    array: ix.array,
    bindings: [
      { name: 'out', buf: o, access: 'write' },
      { name: 'a', buf: ab, access: 'read' },
      { name: 'b', buf: bb, access: 'read' },
    ],
    code: `fn kernel(group: u32, lid: u32, wid: vec3<u32>) {
  let i = group * ${WG}u + lid;
  if (i >= P.n) { return; }
  ${ix.code}
  let a = ld_a(idx0);
  let b = ld_b(idx1);
  st_out(i, ${BINARY[op]});
}`,
    groups: Math.ceil(plan.count / WG),
  });
}
