// The run that kill.test.ts interrupts: the same task and settings in the test (uninterrupted, in
// process) and in kill-train.ts (the child process it kills).
import type { Backend } from '@peft/core';
import { BlobTask } from '../test-helpers.js';
import type { TrainOptions } from '../trainer.js';

export const killRunTask = (backend: Backend) => new BlobTask({ backend, trainSize: 16, hidden: 8, dropout: 0.2, initSeed: 8 });

/** 2 epochs × 2 steps, a checkpoint after every step (and of the untrained state). */
export const killRunOptions: TrainOptions = {
  epochs: 2,
  batchSize: 8,
  microBatchSize: 4,
  lr: 0.05,
  warmupEpochs: 1,
  checkpointEverySteps: 1,
  progress: false,
};
