/** The oracle's Philox random fills and dropout. */
import type { DropoutParams, RandomParams, RowDropoutParams } from '../../backend.js';
import { philox4x32, philoxNormal, philoxUniform } from '../../random/philox.js';
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

/**
 * rowDropout's mask, written out from its definition in backend.ts: row r keyed by the uint32 pair
 * streamKeys[2·stream, 2·stream+1], counter rowKeys[2r] · 2²⁶ + rowKeys[2r+1] · ⌈features/4⌉ + ⌊j/4⌋,
 * lane j mod 4, kept when (word >>> 8) · 2⁻²⁴ ≥ fround(p). Keys outside [0, 2²⁷) or positions past
 * 2²⁶ counters are refused, naming the row.
 */
export function rowDropoutMask(streamKeys: Values, rowKeys: Values, p: RowDropoutParams): Uint8Array {
  const { rows, features, stream } = p;
  const k0 = streamKeys[2 * stream]! >>> 0;
  const k1 = streamKeys[2 * stream + 1]! >>> 0;
  const blocks = Math.ceil(features / 4);
  const threshold = Math.fround(p.p);
  const mask = new Uint8Array(rows * features);
  const words = new Uint32Array(4);
  for (let r = 0; r < rows; r++) {
    const key = rowKeys[2 * r]!;
    const position = rowKeys[2 * r + 1]!;
    if (key < 0 || key >= 2 ** 27 || position < 0 || (position + 1) * blocks > 2 ** 26)
      throw new Error(
        `rowDropout: row ${r} has example key ${key} and position ${position}, outside [0, 2^27) and the example's 2^26 counters`,
      );
    const first = key * 2 ** 26 + position * blocks;
    for (let j = 0; j < features; j++) {
      const c = first + Math.floor(j / 4);
      philox4x32(c % 2 ** 32, Math.floor(c / 2 ** 32), 0, 0, k0, k1, words);
      mask[r * features + j] = (words[j % 4]! >>> 8) * 2 ** -24 >= threshold ? 1 : 0;
    }
  }
  return mask;
}

export function rowDropout(x: Values, streamKeys: Values, rowKeys: Values, p: RowDropoutParams): Float64Array {
  const mask = rowDropoutMask(streamKeys, rowKeys, p);
  return Float64Array.from(mask, (keep, i) => (keep ? x[i]! / (1 - p.p) : 0));
}

export function rowDropoutBackward(dy: Values, streamKeys: Values, rowKeys: Values, p: RowDropoutParams): Float64Array {
  return rowDropout(dy, streamKeys, rowKeys, p);
}
