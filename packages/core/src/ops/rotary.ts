import { needsGrad, record, save } from '../autograd/tape.js';
import type { RotaryParams } from '../backend.js';
import type { Tensor } from '../tensor.js';
import { alloc, backendOf, requireFloat, requireInt, requireShape } from './util.js';

export interface RotaryOptions {
  /** Features of each head that rotate (GPT-NeoX: headDim · rotary_pct); default all. */
  rotaryDim?: number;
  /** rope_theta / rotary_emb_base; default 10000. */
  base?: number;
  /** Linear rope_scaling factor: positions are divided by it. Default 1. */
  positionScale?: number;
}

/** Rotary position embedding on x [batch, seq, heads, headDim] at int32 positions [batch, seq]. */
export function rotary(x: Tensor, positions: Tensor, opts: RotaryOptions = {}): Tensor {
  const op = 'rotary';
  const backend = backendOf(op, [x, positions]);
  requireFloat(op, x);
  requireInt(op, positions, 'positions');
  if (x.rank !== 4) throw new Error(`${op}: x ${x.describe()} must be [batch, seq, heads, headDim]`);
  const [batch, seq, heads, headDim] = x.shape as [number, number, number, number];
  requireShape(op, positions, [batch, seq], 'positions');
  const rotaryDim = opts.rotaryDim ?? headDim;
  if (!Number.isInteger(rotaryDim) || rotaryDim % 2 !== 0 || rotaryDim <= 0 || rotaryDim > headDim) {
    throw new Error(`${op}: rotaryDim ${rotaryDim} must be an even number in (0, headDim = ${headDim}]`);
  }
  const p: RotaryParams = { batch, seq, heads, headDim, rotaryDim, base: opts.base ?? 10000, positionScale: opts.positionScale ?? 1 };
  const y = alloc(backend, x.shape, x.dtype, op);
  if (y.size > 0) backend.rotary(y.buffer(), x.buffer(op), positions.buffer(op), p);
  if (needsGrad([x])) {
    const pos = save(positions);
    record(op, [x], [y], [pos], ([g]) => {
      const dx = alloc(backend, x.shape, g!.dtype, op);
      if (dx.size > 0) backend.rotaryBackward(dx.buffer(), g!.buffer(op), pos.buffer(op), p);
      return [dx];
    });
  }
  return y;
}
