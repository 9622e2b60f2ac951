/**
 * Philox4x32-10 (Salmon et al., SC 2011), the same counter-based generator as
 * `@peft/core/src/random/philox.ts`, re-implemented here because this package depends on no other
 * @peft package. Block b of the stream for `seed` is philox4x32(counter = (b mod 2³², ⌊b/2³²⌋, 0, 0),
 * key = (seed mod 2³², ⌊seed/2³²⌋)); word i of the stream is lane i mod 4 of block ⌊i/4⌋.
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

function philoxBlock(c0: number, c1: number, k0: number, k1: number, out: Uint32Array): void {
  let x0 = c0 >>> 0;
  let x1 = c1 >>> 0;
  let x2 = 0;
  let x3 = 0;
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

/** A sequential reader of the Philox word stream for one seed, starting at block `offset`. */
export class PhiloxStream {
  private readonly k0: number;
  private readonly k1: number;
  private readonly block = new Uint32Array(4);
  private counter: number;
  private lane = 4;

  constructor(seed: number, offset = 0) {
    if (!Number.isSafeInteger(seed) || seed < 0) throw new Error(`seed must be a non-negative safe integer, got ${seed}`);
    if (!Number.isSafeInteger(offset) || offset < 0) throw new Error(`offset must be a non-negative safe integer, got ${offset}`);
    this.k0 = (seed % TWO32) >>> 0;
    this.k1 = Math.floor(seed / TWO32) >>> 0;
    this.counter = offset;
  }

  /** The next uint32 of the stream. */
  nextUint32(): number {
    if (this.lane === 4) {
      philoxBlock(this.counter % TWO32, Math.floor(this.counter / TWO32), this.k0, this.k1, this.block);
      this.counter++;
      this.lane = 0;
    }
    return this.block[this.lane++]!;
  }

  /**
   * A uniform integer in [0, n) for 1 ≤ n ≤ 2³², without modulo bias: words at or above the largest
   * multiple of n below 2³² are rejected and redrawn.
   */
  nextInt(n: number): number {
    if (!Number.isInteger(n) || n < 1 || n > TWO32) throw new Error(`nextInt needs an integer range 1..2^32, got ${n}`);
    const limit = TWO32 - (TWO32 % n);
    for (;;) {
      const w = this.nextUint32();
      if (w < limit) return w % n;
    }
  }
}
