/** The oracle's Philox random fills and dropout. */
import type { DropoutParams, RandomParams } from '../../backend.js';
import { philoxNormal, philoxUniform } from '../../random/philox.js';
import type { Values } from './views.js';

export function random(n: number, p: RandomParams): Float64Array {
  const values =
    p.distribution === 'uniform' ? philoxUniform(p.seed, p.offset, n, p.low, p.high) : philoxNormal(p.seed, p.offset, n, p.low, p.high);
  return Float64Array.from(values);
}

/** 1 where the element is kept: uniform(seed, offset)[i] ≥ p. */
export function dropoutMask(n: number, p: DropoutParams): Uint8Array {
  const u = philoxUniform(p.seed, p.offset, n);
  return Uint8Array.from(u, (x) => (x >= p.p ? 1 : 0));
}

export function dropout(x: Values, p: DropoutParams): Float64Array {
  const mask = dropoutMask(x.length, p);
  return Float64Array.from(x, (v, i) => (mask[i] ? v / (1 - p.p) : 0));
}

export function dropoutBackward(dy: Values, p: DropoutParams): Float64Array {
  return dropout(dy, p);
}
