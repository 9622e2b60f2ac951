import { seededShuffle } from '../random/shuffle.js';

export interface BatchOptions {
  batchSize: number;
  /** Shuffle with this seed (Philox Fisher–Yates); omitted: keep the input order. */
  seed?: number;
  /** Epoch number: each epoch draws a different order from the same seed. Default 0. */
  epoch?: number;
  /**
   * Length of each item: when given, items are grouped by length to reduce padding. The (shuffled)
   * order is cut into buckets of `bucketSize` batches, each bucket is sorted by length (longest
   * first), cut into batches, and the batches are shuffled again (when `seed` is set).
   */
  lengths?: readonly number[];
  /** Batches per bucket for length grouping. Default 50. */
  bucketSize?: number;
  /** Drop the final batch when it is smaller than `batchSize`. */
  dropLast?: boolean;
}

const EPOCH_STRIDE = 2 ** 32; // Philox block offset between epochs (a shuffle uses far fewer blocks)

function chunk(items: readonly number[], size: number): number[][] {
  const out: number[][] = [];
  for (let i = 0; i < items.length; i += size) out.push(items.slice(i, i + size));
  return out;
}

/** Index batches over `count` items (seeded, optionally length-bucketed). */
export function batchIndices(count: number, options: BatchOptions): number[][] {
  const { batchSize, seed, epoch = 0, lengths, bucketSize = 50 } = options;
  if (!Number.isInteger(batchSize) || batchSize < 1) throw new Error(`batchSize must be a positive integer, got ${batchSize}`);
  if (lengths && lengths.length !== count) throw new Error(`lengths has ${lengths.length} entries for ${count} items`);
  const base = Array.from({ length: count }, (_, i) => i);
  const order = seed === undefined ? base : seededShuffle(base, seed, epoch * EPOCH_STRIDE);
  let batches: number[][];
  if (lengths) {
    batches = [];
    for (const bucket of chunk(order, batchSize * bucketSize)) {
      const sorted = [...bucket].sort((a, b) => lengths[b]! - lengths[a]!);
      batches.push(...chunk(sorted, batchSize));
    }
  } else batches = chunk(order, batchSize);
  if (options.dropLast) batches = batches.filter((b) => b.length === batchSize);
  if (lengths && seed !== undefined) batches = seededShuffle(batches, seed, epoch * EPOCH_STRIDE + EPOCH_STRIDE / 2);
  return batches;
}

/** The items of each batch of {@link batchIndices}. */
export function batchItems<T>(items: readonly T[], options: BatchOptions): T[][] {
  return batchIndices(items.length, options).map((b) => b.map((i) => items[i]!));
}
