// The chart's scale (the DOM part runs in the end-to-end test): the y range follows the data.
import { expect, it } from 'vitest';
import { lossRange, stepTicks } from './chart.js';

it('scales y to the data with a margin, so a loss rising above its first value stays inside', () => {
  const values = [1.1, 0.9, 1.6, 0.7];
  const { min, max, ticks } = lossRange(values);
  expect(min).toBeCloseTo(0.7 - 0.08 * 0.9, 12);
  expect(max).toBeCloseTo(1.6 + 0.08 * 0.9, 12);
  for (const v of values) expect(v > min && v < max).toBe(true);
  expect(ticks.length).toBeGreaterThanOrEqual(3);
  for (const t of ticks) expect(t >= min && t <= max).toBe(true);
  // Recomputed as points arrive: the range after the first point is that point's neighbourhood.
  const first = lossRange([1.1]);
  expect(first.min).toBeLessThan(1.1);
  expect(first.max).toBeGreaterThan(1.1);
  expect(first.max).toBeLessThan(1.6);
});

it('labels steps 1, the last and round steps between', () => {
  expect(stepTicks(30)).toEqual([1, 5, 10, 15, 20, 25, 30]);
  expect(stepTicks(12)).toEqual([1, 2, 4, 6, 8, 10, 12]);
  expect(stepTicks(1)).toEqual([1]);
  expect(lossRange([]).ticks).toEqual([0, 0.5, 1]);
});
