/** GELU (exact and tanh approximation) and SwiGLU's silu(gate)·up, with their backward passes, in float32. */
import type { KernelFamily } from '@peft/core';
import type { WebGpuBuffer } from '../buffer.js';
import { type Ctx, map } from './common.js';
import { MATH } from './math.js';

const GELU = /* wgsl */ `
const SQRT1_2 = 0.7071067811865476;
const INV_SQRT_2PI = 0.3989422804014327;
const TANH_C = 0.7978845608028654;
const TANH_A = 0.044715;
`;

/** gelu, geluBackward, siluMul and siluMulBackward; their arguments are checked in core (kernelChecks). */
export const activationKernels = {
  /** exact: y = 0.5·x·erfc(−x/√2); approximate: y = 0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³))). */
  gelu(ctx, out, x, approximate) {
    const body = approximate
      ? 'let v = ld_x(i); st_out(i, 0.5 * v * (1.0 + tanh_safe(TANH_C * (v + TANH_A * v * v * v))));'
      : 'let v = ld_x(i); st_out(i, 0.5 * v * erfc_f(-v * SQRT1_2));';
    const bindings = [
      { name: 'out', buf: out as WebGpuBuffer, access: 'write' },
      { name: 'x', buf: x as WebGpuBuffer, access: 'read' },
    ] as const;
    map(ctx, 'gelu', out.size, bindings, body, [], MATH + GELU);
  },

  /** exact: y' = Φ(x) + x·φ(x); approximate: y' = 0.5·(1 + t) + 0.5·x·(1 − t²)·√(2/π)·(1 + 3·0.044715·x²). */
  geluBackward(ctx, dx, dy, x, approximate) {
    const body = approximate
      ? `let v = ld_x(i);
  let t = tanh_safe(TANH_C * (v + TANH_A * v * v * v));
  st_dx(i, ld_dy(i) * (0.5 * (1.0 + t) + 0.5 * v * (1.0 - t * t) * TANH_C * (1.0 + 3.0 * TANH_A * v * v)));`
      : `let v = ld_x(i);
  st_dx(i, ld_dy(i) * (0.5 * erfc_f(-v * SQRT1_2) + v * INV_SQRT_2PI * exp(-0.5 * v * v)));`;
    const bindings = [
      { name: 'dx', buf: dx as WebGpuBuffer, access: 'write' },
      { name: 'dy', buf: dy as WebGpuBuffer, access: 'read' },
      { name: 'x', buf: x as WebGpuBuffer, access: 'read' },
    ] as const;
    map(ctx, 'geluBackward', dx.size, bindings, body, [], MATH + GELU);
  },

  /** out = silu(gate) · up. */
  siluMul(ctx, out, gate, up) {
    const bindings = [
      { name: 'out', buf: out as WebGpuBuffer, access: 'write' },
      { name: 'gate', buf: gate as WebGpuBuffer, access: 'read' },
      { name: 'up', buf: up as WebGpuBuffer, access: 'read' },
    ] as const;
    map(ctx, 'siluMul', out.size, bindings, 'let v = ld_gate(i); st_out(i, v * sigmoid(v) * ld_up(i));', [], MATH);
  },

  /** dUp = dy · silu(gate); dGate = dy · up · s·(1 + gate·(1 − s)) with s = sigmoid(gate). */
  siluMulBackward(ctx, dGate, dUp, dy, gate, up) {
    const bindings = [
      { name: 'dg', buf: dGate as WebGpuBuffer, access: 'write' },
      { name: 'du', buf: dUp as WebGpuBuffer, access: 'write' },
      { name: 'dy', buf: dy as WebGpuBuffer, access: 'read' },
      { name: 'gate', buf: gate as WebGpuBuffer, access: 'read' },
      { name: 'up', buf: up as WebGpuBuffer, access: 'read' },
    ] as const;
    map(
      ctx,
      'siluMulBackward',
      dGate.size,
      bindings,
      `let g = ld_dy(i);
  let v = ld_gate(i);
  let s = sigmoid(v);
  let u = ld_up(i);
  st_du(i, g * v * s);
  st_dg(i, g * u * s * (1.0 + v * (1.0 - s)));`,
      [],
      MATH,
    );
  },
} satisfies KernelFamily<Ctx>;
