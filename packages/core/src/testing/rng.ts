import { philoxBlocks, philoxNormal, philoxUniform } from '../random/philox.js';

/** 32-bit FNV-1a of a string: turns a case name into a seed, so each case reproduces on its own. */
export function hashSeed(text: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) {
    h ^= text.charCodeAt(i);
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return h;
}

/** Deterministic test inputs from one Philox stream: every draw advances the counter. */
export class TestRng {
  private offset = 0;
  constructor(readonly seed: number) {}

  private take(n: number): number {
    const at = this.offset;
    this.offset += philoxBlocks(Math.max(n, 1)) + 1;
    return at;
  }

  normal(n: number, mean = 0, std = 1): Float64Array {
    return Float64Array.from(philoxNormal(this.seed, this.take(n), n, mean, std));
  }

  uniform(n: number, low = 0, high = 1): Float64Array {
    return Float64Array.from(philoxUniform(this.seed, this.take(n), n, low, high));
  }

  /** Integers in [low, high). */
  int(n: number, low: number, high: number): Int32Array {
    const u = philoxUniform(this.seed, this.take(n), n);
    return Int32Array.from(u, (x) => Math.min(high - 1, low + Math.floor(x * (high - low))));
  }

  /** Normal values pushed at least `gap` away from 0 (for kinks at 0: relu, abs). */
  awayFromZero(n: number, gap: number, std = 1): Float64Array {
    return this.normal(n, 0, std).map((x) => (x >= 0 ? gap + x : x - gap));
  }
}
