/** GELU (exact and tanh approximation) and SwiGLU's silu(gate)·up, with their backward passes, in float32. */
import type { DeviceBuffer } from '@peft/core';
import { arg, same } from '../buffer.js';
import { type Ctx, map } from './common.js';
import { MATH } from './math.js';

const GELU = /* wgsl */ `
const SQRT1_2 = 0.7071067811865476;
const INV_SQRT_2PI = 0.3989422804014327;
const TANH_C = 0.7978845608028654;
const TANH_A = 0.044715;
`;

/** exact: y = 0.5·x·erfc(−x/√2); approximate: y = 0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³))). */
export function gelu(ctx: Ctx, out: DeviceBuffer, x: DeviceBuffer, approximate: boolean): void {
  const o = arg(ctx.owner, 'gelu', 'out', out, 0, 'float');
  const xb = same(ctx.owner, 'gelu', 'x', x, o.size, 'float');
  const body = approximate
    ? 'let v = ld_x(i); st_out(i, 0.5 * v * (1.0 + tanh_safe(TANH_C * (v + TANH_A * v * v * v))));'
    : 'let v = ld_x(i); st_out(i, 0.5 * v * erfc_f(-v * SQRT1_2));';
  map(
    ctx,
    'gelu',
    o.size,
    [
      { name: 'out', buf: o, access: 'write' },
      { name: 'x', buf: xb, access: 'read' },
    ],
    body,
    [],
    MATH + GELU,
  );
}

/** exact: y' = Φ(x) + x·φ(x); approximate: y' = 0.5·(1 + t) + 0.5·x·(1 − t²)·√(2/π)·(1 + 3·0.044715·x²). */
export function geluBackward(ctx: Ctx, dx: DeviceBuffer, dy: DeviceBuffer, x: DeviceBuffer, approximate: boolean): void {
  const o = arg(ctx.owner, 'geluBackward', 'dx', dx, 0, 'float');
  const g = same(ctx.owner, 'geluBackward', 'dy', dy, o.size, 'float');
  const xb = same(ctx.owner, 'geluBackward', 'x', x, o.size, 'float');
  const body = approximate
    ? `let v = ld_x(i);
  let t = tanh_safe(TANH_C * (v + TANH_A * v * v * v));
  st_dx(i, ld_dy(i) * (0.5 * (1.0 + t) + 0.5 * v * (1.0 - t * t) * TANH_C * (1.0 + 3.0 * TANH_A * v * v)));`
    : `let v = ld_x(i);
  st_dx(i, ld_dy(i) * (0.5 * erfc_f(-v * SQRT1_2) + v * INV_SQRT_2PI * exp(-0.5 * v * v)));`;
  map(
    ctx,
    'geluBackward',
    o.size,
    [
      { name: 'dx', buf: o, access: 'write' },
      { name: 'dy', buf: g, access: 'read' },
      { name: 'x', buf: xb, access: 'read' },
    ],
    body,
    [],
    MATH + GELU,
  );
}

/** out = silu(gate) · up. */
export function siluMul(ctx: Ctx, out: DeviceBuffer, gate: DeviceBuffer, up: DeviceBuffer): void {
  const o = arg(ctx.owner, 'siluMul', 'out', out, 0, 'float');
  map(
    ctx,
    'siluMul',
    o.size,
    [
      { name: 'out', buf: o, access: 'write' },
      { name: 'gate', buf: same(ctx.owner, 'siluMul', 'gate', gate, o.size, 'float'), access: 'read' },
      { name: 'up', buf: same(ctx.owner, 'siluMul', 'up', up, o.size, 'float'), access: 'read' },
    ],
    'let v = ld_gate(i); st_out(i, v * sigmoid(v) * ld_up(i));',
    [],
    MATH,
  );
}

/** dUp = dy · silu(gate); dGate = dy · up · s·(1 + gate·(1 − s)) with s = sigmoid(gate). */
export function siluMulBackward(
  ctx: Ctx,
  dGate: DeviceBuffer,
  dUp: DeviceBuffer,
  dy: DeviceBuffer,
  gate: DeviceBuffer,
  up: DeviceBuffer,
): void {
  const K = 'siluMulBackward';
  const dg = arg(ctx.owner, K, 'dGate', dGate, 0, 'float');
  const n = dg.size;
  const du = same(ctx.owner, K, 'dUp', dUp, n, 'float');
  if (dg === du) throw new Error(`${K}: dGate and dUp must be different buffers`);
  map(
    ctx,
    K,
    n,
    [
      { name: 'dg', buf: dg, access: 'write' },
      { name: 'du', buf: du, access: 'write' },
      { name: 'dy', buf: same(ctx.owner, K, 'dy', dy, n, 'float'), access: 'read' },
      { name: 'gate', buf: same(ctx.owner, K, 'gate', gate, n, 'float'), access: 'read' },
      { name: 'up', buf: same(ctx.owner, K, 'up', up, n, 'float'), access: 'read' },
    ],
    `let g = ld_dy(i);
  let v = ld_gate(i);
  let s = sigmoid(v);
  let u = ld_up(i);
  st_du(i, g * v * s);
  st_dg(i, g * u * s * (1.0 + v * (1.0 - s)));`,
    [],
    MATH,
  );
}
