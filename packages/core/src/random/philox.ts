/**
 * Philox4x32-10 (Salmon et al., "Parallel random numbers: as easy as 1, 2, 3", SC 2011): a
 * counter-based generator, so element i of a random tensor depends only on (seed, offset, i) and
 * every backend computes the same bits. This file is the reference every kernel must match.
 *
 * Key = (seed mod 2³², ⌊seed / 2³²⌋). Element i uses counter c = offset + ⌊i/4⌋ as
 * (c mod 2³², ⌊c / 2³²⌋, 0, 0) and takes lane i mod 4 of the output block.
 * uniform(x) = (x >>> 8) · 2⁻²⁴ ∈ [0, 1) (exact in float32).
 * normal: lanes (0,1) and (2,3) pair up: u1 = ((x_a >>> 8) + 1) · 2⁻²⁴ ∈ (0, 1], u2 = uniform(x_b),
 * r = √(−2 ln u1), z_a = r cos 2πu2, z_b = r sin 2πu2.
 */

const M0 = 0xd2511f53;
const M1 = 0xcd9e8d57;
const W0 = 0x9e3779b9;
const W1 = 0xbb67ae85;
const TWO32 = 4294967296;

/** High 32 bits of the 64-bit product of two uint32. */
function mulhi(a: number, b: number): number {
  const aLo = a & 0xffff;
  const aHi = a >>> 16;
  const bLo = b & 0xffff;
  const bHi = b >>> 16;
  const lolo = aLo * bLo;
  const lohi = aLo * bHi;
  const hilo = aHi * bLo;
  const hihi = aHi * bHi;
  const cross = (lolo >>> 16) + (lohi & 0xffff) + (hilo & 0xffff);
  return (hihi + (lohi >>> 16) + (hilo >>> 16) + (cross >>> 16)) >>> 0;
}

/** Writes the 4 output words of Philox4x32-10 for (counter, key) into `out`. */
export function philox4x32(c0: number, c1: number, c2: number, c3: number, k0: number, k1: number, out: Uint32Array): void {
  let x0 = c0 >>> 0;
  let x1 = c1 >>> 0;
  let x2 = c2 >>> 0;
  let x3 = c3 >>> 0;
  let key0 = k0 >>> 0;
  let key1 = k1 >>> 0;
  for (let round = 0; round < 10; round++) {
    const hi0 = mulhi(M0, x0);
    const lo0 = Math.imul(M0, x0) >>> 0;
    const hi1 = mulhi(M1, x2);
    const lo1 = Math.imul(M1, x2) >>> 0;
    x0 = (hi1 ^ x1 ^ key0) >>> 0;
    x1 = lo1;
    x2 = (hi0 ^ x3 ^ key1) >>> 0;
    x3 = lo0;
    key0 = (key0 + W0) >>> 0;
    key1 = (key1 + W1) >>> 0;
  }
  out[0] = x0;
  out[1] = x1;
  out[2] = x2;
  out[3] = x3;
}

export function splitKey(seed: number): [number, number] {
  if (!Number.isSafeInteger(seed) || seed < 0) throw new Error(`random seed must be a non-negative safe integer, got ${seed}`);
  return [(seed % TWO32) >>> 0, Math.floor(seed / TWO32) >>> 0];
}

/** Raw Philox words for elements [0, n) of the stream (seed, offset). */
export function philoxWords(seed: number, offset: number, n: number): Uint32Array {
  if (!Number.isSafeInteger(offset) || offset < 0) throw new Error(`random offset must be a non-negative safe integer, got ${offset}`);
  const [k0, k1] = splitKey(seed);
  const out = new Uint32Array(Math.ceil(n / 4) * 4);
  const block = new Uint32Array(4);
  for (let b = 0; b < out.length / 4; b++) {
    const c = offset + b;
    philox4x32(c % TWO32, Math.floor(c / TWO32), 0, 0, k0, k1, block);
    out.set(block, b * 4);
  }
  return out.subarray(0, n);
}

/** Uniform floats in [low, high), element i from counter offset + ⌊i/4⌋, lane i mod 4. */
export function philoxUniform(seed: number, offset: number, n: number, low = 0, high = 1): Float32Array {
  const words = philoxWords(seed, offset, n);
  const out = new Float32Array(n);
  const scale = high - low;
  for (let i = 0; i < n; i++) out[i] = low + scale * ((words[i]! >>> 8) * 2 ** -24);
  return out;
}

/** Normal floats with the given mean and standard deviation (Box–Muller on lane pairs). */
export function philoxNormal(seed: number, offset: number, n: number, mean = 0, std = 1): Float32Array {
  const words = philoxWords(seed, offset, Math.ceil(n / 2) * 2);
  const out = new Float32Array(n);
  for (let i = 0; i < n; i += 2) {
    const u1 = ((words[i]! >>> 8) + 1) * 2 ** -24;
    const u2 = (words[i + 1]! >>> 8) * 2 ** -24;
    const r = Math.sqrt(-2 * Math.log(u1));
    const t = 2 * Math.PI * u2;
    out[i] = mean + std * r * Math.cos(t);
    if (i + 1 < n) out[i + 1] = mean + std * r * Math.sin(t);
  }
  return out;
}

/** Number of Philox counters (blocks of 4 numbers) that n elements use. */
export function philoxBlocks(n: number): number {
  return Math.ceil(n / 4);
}
