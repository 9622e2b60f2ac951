import { type Generator, philoxWords } from '@peft/core';

/**
 * A permutation of 0…n−1 drawn from `generator` (Fisher–Yates on 32-bit Philox words): the same
 * generator state gives the same order on every machine, and the generator advances by the draw.
 */
export function shuffledIndices(n: number, generator: Generator): number[] {
  if (!Number.isSafeInteger(n) || n < 0) throw new Error(`shuffledIndices: size ${n} must be a non-negative integer`);
  const order = Array.from({ length: n }, (_, i) => i);
  if (n < 2) return order;
  const words = philoxWords(generator.seed, generator.next(n), n);
  for (let i = n - 1; i > 0; i--) {
    const j = Math.floor((words[i]! / 2 ** 32) * (i + 1));
    const t = order[i]!;
    order[i] = order[j]!;
    order[j] = t;
  }
  return order;
}
