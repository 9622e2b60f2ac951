import { describe, expect, it } from 'vitest';
import { BF16_UNIT_ROUNDOFF, tolerance } from './training-check.js';

describe('training-check tolerance', () => {
  it('float32: 1e-5 relative at step 1, 2e-4 after', () => {
    const t = tolerance('float32');
    expect(t.allowed(8, 0, 8)).toBeCloseTo(8e-5, 12);
    expect(t.allowed(0.5, 7, 8)).toBeCloseTo(1e-4, 12);
    expect(t.check(8, 8 + 7e-5, 0, 8)).toBe(true);
    expect(t.check(8, 8 + 9e-5, 0, 8)).toBe(false);
  });

  it('bfloat16: u · n · (2 |loss| + |first| / 100), growing with the step', () => {
    const t = tolerance('bfloat16');
    expect(BF16_UNIT_ROUNDOFF).toBe(0.00390625);
    // Step 1 of the tiny Llama (loss 8): 2^-8 · (16 + 0.08) = 0.0628125.
    expect(t.allowed(8, 0, 8)).toBeCloseTo(0.0628125, 12);
    // Step 16 at loss 0.31: 2^-8 · 16 · (0.62 + 0.08) = 0.04375 (the emulator's worst step: 0.0072 off).
    expect(t.allowed(0.31, 15, 8)).toBeCloseTo(0.04375, 12);
    expect(t.check(0.31, 0.31 + 0.0072, 15, 8)).toBe(true);
    // Step 20, nearly memorised (0.08): 2^-8 · 20 · (0.16 + 0.08) = 0.01875; a loss of 0.1 there fails.
    expect(t.allowed(0.08, 19, 8)).toBeCloseTo(0.01875, 12);
    expect(t.check(0.08, 0.1, 19, 8)).toBe(false);
    expect(t.check(0.08, 0.09, 19, 8)).toBe(true);
  });
});
