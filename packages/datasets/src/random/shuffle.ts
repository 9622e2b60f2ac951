import { PhiloxStream } from './philox.js';

/**
 * A seeded permutation of `items` (a new array; the input is left alone).
 *
 * Algorithm: Fisher–Yates, for i = n−1 down to 1 swap element i with element j = nextInt(i + 1),
 * where nextInt draws from the Philox4x32-10 word stream of `seed` (block counter starting at
 * `offset`) with rejection of biased words. The same (items, seed, offset) give the same order on
 * every platform.
 */
export function seededShuffle<T>(items: readonly T[], seed: number, offset = 0): T[] {
  const out = items.slice();
  const rng = new PhiloxStream(seed, offset);
  for (let i = out.length - 1; i > 0; i--) {
    const j = rng.nextInt(i + 1);
    const tmp = out[i]!;
    out[i] = out[j]!;
    out[j] = tmp;
  }
  return out;
}

/**
 * Cuts `items` into `parts` consecutive pieces whose sizes differ by at most one: the first
 * `items.length % parts` pieces get one more item (numpy.array_split, more_itertools.divide).
 */
export function splitIntoParts<T>(items: readonly T[], parts: number): T[][] {
  if (!Number.isInteger(parts) || parts < 1) throw new Error(`parts must be a positive integer, got ${parts}`);
  const q = Math.floor(items.length / parts);
  const r = items.length % parts;
  const out: T[][] = [];
  let start = 0;
  for (let p = 0; p < parts; p++) {
    const size = q + (p < r ? 1 : 0);
    out.push(items.slice(start, start + size));
    start += size;
  }
  return out;
}
