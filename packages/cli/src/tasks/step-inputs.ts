// How the studies' tasks shape a micro-batch for `TrainTask.stepInputs`: the batch's own shapes
// eagerly, or a few bucketed shapes when the backend captures graphs (one graph per shape).
import type { StepShapes } from '@peft/trainer';

/**
 * The bucket a length goes to when shapes are fixed: 16, 32 or 64, then the next multiple of 64,
 * never above `cap`. Powers of two alone would pad a 130-token row to 256 (nearly half of the
 * attention and GEMM work wasted); multiples of 64 alone would pad an 8-token row to 64. Together
 * they waste at most 63 positions, and at most half of a bucket above 16, with few buckets: 10 up
 * to Study A's 512 tokens, so few graphs are captured.
 */
export function bucket(n: number, cap: number): number {
  let b = 16;
  while (b < n && b < 64) b *= 2;
  if (n > 64) b = Math.ceil(n / 64) * 64;
  return Math.max(n, Math.min(b, cap));
}

/** Rows and positions to pad a micro-batch of `rows` × `length` to: none unless `shapes.fixed`. */
export function stepPadding(rows: number, length: number, shapes: StepShapes, maxLength: number): { batch: number; seq: number } {
  if (!shapes.fixed) return { batch: rows, seq: length };
  return { batch: Math.max(rows, shapes.microBatchSize), seq: bucket(length, maxLength) };
}

/**
 * The examples' dropout keys for `rows` rows: padding rows take key 0. A row's masks depend on its
 * own key and positions only, so they change no real row's masks (and count for nothing in the loss).
 */
export function paddedKeys(examples: readonly number[], rows: number): number[] {
  return [...examples, ...new Array<number>(rows - examples.length).fill(0)];
}

/** The keys `stepInputs` recorded for `stepLoss`, checked against the rows of the inputs it got. */
export function keysFor(where: string, keys: readonly number[] | null, rows: number | undefined): readonly number[] {
  if (!keys) throw new Error(`${where}: no micro-batch described: call stepInputs(batch) before stepLoss on its tensors`);
  if (rows !== keys.length) {
    throw new Error(
      `${where}: inputIds has ${rows} rows but the latest stepInputs described ${keys.length}: call stepInputs for each micro-batch right before its stepLoss`,
    );
  }
  return keys;
}
