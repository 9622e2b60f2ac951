import { createCpuBackend } from '@peft/backend-cpu';
import { Generator, tensor } from '@peft/core';
import { afterAll, describe, expect, it } from 'vitest';
import { clipCoefficient, squaredNorm } from './clip.js';
import { formatDuration } from './progress.js';
import { shuffledIndices } from './shuffle.js';

const backend = createCpuBackend({ threads: 1 });
afterAll(() => backend.destroy());

describe('seeded shuffling', () => {
  it('gives a permutation that depends only on the generator state, and advances the generator', () => {
    const g = new Generator(42);
    const a = shuffledIndices(100, g);
    expect([...a].sort((x, y) => x - y)).toEqual(Array.from({ length: 100 }, (_, i) => i));
    expect(a).not.toEqual(Array.from({ length: 100 }, (_, i) => i));
    expect(g.offset).toBe(25);
    const b = shuffledIndices(100, g);
    expect(b).not.toEqual(a);
    expect(shuffledIndices(100, new Generator(42))).toEqual(a);
    expect(shuffledIndices(100, new Generator(0).setState({ seed: 42, offset: 25 }))).toEqual(b);
  });
});

describe('gradient clipping', () => {
  it('sums squares of every gradient on the device and scales to maxNorm', async () => {
    const grads = [
      tensor([3, 0], [2], { backend }),
      tensor([4], [1, 1], { backend }),
      tensor([0, 12], [2], { backend, dtype: 'bfloat16' }),
    ];
    const sq = squaredNorm(grads)!;
    expect(sq.shape).toEqual([1]);
    expect(await sq.item()).toBe(169);
    const norm = Math.sqrt(169);
    const c = clipCoefficient(norm, 1);
    // The clipped gradients' global norm is maxNorm (PyTorch adds 1e-6 to the norm).
    expect(norm * c).toBeCloseTo(1, 6);
    expect(clipCoefficient(0.5, 1)).toBe(1);
    expect(clipCoefficient(100, null)).toBe(1);
    expect(squaredNorm([])).toBeNull();
    for (const g of [...grads, sq]) g.dispose();
  });
});

it('formats durations', () => {
  expect([7, 65, 3725].map(formatDuration)).toEqual(['7s', '1:05', '1:02:05']);
});
