import { needsGrad, record, save } from '../autograd/tape.js';
import type { Tensor } from '../tensor.js';
import { alloc, backendOf, promote, requireFloat, requireShape, wanted } from './util.js';

/** GELU; `approximate` uses the tanh form (`gelu_new`, `gelu_pytorch_tanh`). */
export function gelu(x: Tensor, approximate = false): Tensor {
  const op = 'gelu';
  const backend = backendOf(op, [x]);
  requireFloat(op, x);
  const y = alloc(backend, x.shape, x.dtype, op);
  if (y.size > 0) backend.gelu(y.buffer(), x.buffer(op), approximate);
  if (needsGrad([x])) {
    const xs = save(x);
    record(op, [x], [y], [xs], ([g]) => {
      const dx = alloc(backend, x.shape, g!.dtype, op);
      if (dx.size > 0) backend.geluBackward(dx.buffer(), g!.buffer(op), xs.buffer(op), approximate);
      return [dx];
    });
  }
  return y;
}

/** silu(gate) · up: the SwiGLU of Llama's MLP. */
export function siluMul(gate: Tensor, up: Tensor): Tensor {
  const op = 'siluMul';
  const backend = backendOf(op, [gate, up]);
  requireFloat(op, gate);
  requireShape(op, up, gate.shape, 'up');
  const y = alloc(backend, gate.shape, promote(op, gate, up), op);
  if (y.size > 0) backend.siluMul(y.buffer(), gate.buffer(op), up.buffer(op));
  if (needsGrad([gate, up])) {
    const gs = save(gate);
    const us = save(up);
    record(op, [gate, up], [y], [gs, us], ([g]) => {
      const dGate = alloc(backend, gate.shape, gate.dtype, op);
      const dUp = alloc(backend, up.shape, up.dtype, op);
      if (y.size > 0) backend.siluMulBackward(dGate.buffer(), dUp.buffer(), g!.buffer(op), gs.buffer(op), us.buffer(op));
      return [wanted(dGate, gate.requiresGrad), wanted(dUp, up.requiresGrad)];
    });
  }
  return y;
}
