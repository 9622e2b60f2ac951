import { seededShuffle, splitIntoParts } from '../random/shuffle.js';

export interface LivedoorSplitOptions {
  seed: number;
  /** Number of near-equal parts; the last is test, the one before validation, the rest train. Default 10. */
  parts?: number;
}

export interface LivedoorSplit<T> {
  train: T[];
  validation: T[];
  test: T[];
}

/**
 * Study A's split: a seeded shuffle ({@link seededShuffle}: Fisher–Yates on a Philox stream), then
 * `parts` near-equal consecutive pieces (the first `n % parts` one longer, as numpy.array_split);
 * pieces 0…parts−3 are train, parts−2 validation, parts−1 test. With 7,367 articles and 10 parts the
 * test part has 736 articles, as in the study.
 */
export function splitLivedoor<T>(examples: readonly T[], options: LivedoorSplitOptions): LivedoorSplit<T> {
  const parts = options.parts ?? 10;
  if (parts < 3) throw new Error(`splitLivedoor needs at least 3 parts (train, validation, test), got ${parts}`);
  const pieces = splitIntoParts(seededShuffle(examples, options.seed), parts);
  return {
    train: pieces.slice(0, parts - 2).flat(),
    validation: pieces[parts - 2]!,
    test: pieces[parts - 1]!,
  };
}
