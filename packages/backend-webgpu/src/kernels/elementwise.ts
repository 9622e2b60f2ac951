/**
 * Elementwise float ops: unary (and backward), affine, strided binary. Computed in float32,
 * rounded to the output's storage dtype. An output may alias an input (the runtime reads a copy).
 */
import { type BinaryOp, type KernelFamily, type UnaryOp, unaryBackwardReadsY } from '@peft/core';
import type { WebGpuBuffer } from '../buffer.js';
import { type Ctx, map, mapStrided } from './common.js';
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

const BINARY: Record<BinaryOp, string> = {
  add: 'a + b',
  sub: 'a - b',
  mul: 'a * b',
  div: 'a / b',
  // max/min propagate NaN like torch.maximum (WGSL's max/min leave NaN unspecified).
  max: 'select(max(a, b), a + b, is_nan(a) || is_nan(b))',
  min: 'select(min(a, b), a + b, is_nan(a) || is_nan(b))',
};

/** unary, unaryBackward, affine and binary; their arguments are checked in core (kernelChecks). */
export const elementwiseKernels = {
  unary(ctx, op, out, x) {
    const bindings = [
      { name: 'out', buf: out as WebGpuBuffer, access: 'write' },
      { name: 'x', buf: x as WebGpuBuffer, access: 'read' },
    ] as const;
    map(ctx, `unary(${op})`, out.size, bindings, `let x = ld_x(i); st_out(i, ${UNARY[op]});`, [], MATH);
  },

  unaryBackward(ctx, op, dx, dy, x, y) {
    const bindings = [
      { name: 'dx', buf: dx as WebGpuBuffer, access: 'write' },
      { name: 'dy', buf: dy as WebGpuBuffer, access: 'read' },
      { name: 'v', buf: (unaryBackwardReadsY(op) ? y : x) as WebGpuBuffer, access: 'read' },
    ] as const;
    map(ctx, `unaryBackward(${op})`, dx.size, bindings, `let g = ld_dy(i); let v = ld_v(i); st_dx(i, ${BACKWARD[op]});`, [], MATH);
  },

  /** out[i] = x[i]·alpha + beta. */
  affine(ctx, out, x, alpha, beta) {
    const bindings = [
      { name: 'out', buf: out as WebGpuBuffer, access: 'write' },
      { name: 'x', buf: x as WebGpuBuffer, access: 'read' },
    ] as const;
    map(ctx, 'affine', out.size, bindings, 'st_out(i, ld_x(i) * P.alpha + P.beta);', [
      ['alpha', 'f32', alpha],
      ['beta', 'f32', beta],
    ]);
  },

  /** out (contiguous, the views' shape) = a[aView(i)] op b[bView(i)]. */
  binary(ctx, op, out, a, aView, b, bView) {
    const bindings = [
      { name: 'out', buf: out as WebGpuBuffer, access: 'write' },
      { name: 'a', buf: a as WebGpuBuffer, access: 'read' },
      { name: 'b', buf: b as WebGpuBuffer, access: 'read' },
    ] as const;
    mapStrided(
      ctx,
      `binary(${op})`,
      aView.shape,
      [aView, bView],
      bindings,
      `let a = ld_a(idx0);
  let b = ld_b(idx1);
  st_out(i, ${BINARY[op]});`,
    );
  },
} satisfies KernelFamily<Ctx>;
