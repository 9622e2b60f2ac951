import { TrainingAbortedError } from '@peft/trainer';
import { describe, expect, it } from 'vitest';
import { UsageError } from './args.js';
import { exitCodeOf } from './interrupt.js';

describe('how a run ends', () => {
  it('gives 0 for success, 2 for a usage error, 130 when interrupted, 1 for anything else', () => {
    expect(exitCodeOf(undefined)).toBe(0);
    expect(exitCodeOf(new UsageError('--epochs 0 is not a positive integer'))).toBe(2);
    expect(exitCodeOf(new TrainingAbortedError('training aborted at epoch 1 step 3', 3, null))).toBe(130);
    expect(exitCodeOf(new Error('runs/x/adapter: disk full'))).toBe(1);
  });
});
