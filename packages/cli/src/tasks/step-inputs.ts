// How the studies' tasks shape a micro-batch for `TrainTask.stepInputs`: the batch's own shapes
// eagerly, or a few bucketed shapes when the backend captures graphs (one graph per shape); and
// the micro-batch's per-example LoRA dropout keys, as inputs when dropout is on.
import { Dropout, exampleRowKeys, exampleStreamKeys, type Module, setDropoutExamples, type Tensor } from '@peft/core';
import type { LossContext, StepInput, StepShapes } from '@peft/trainer';

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

/** The rows that the LM head gathers: flat positions (example · length + position) of the padded batch. */
export interface GatheredRows {
  length: number;
  rows: readonly number[];
}

/**
 * The number of Dropout modules (one stream each) and the seed of those that draw masks now
 * (training mode, p > 0), or null when none does. Stream keys come from one seed: Dropouts drawing
 * from several generators keep host keys.
 */
function activeDropout(model: Module): { seed: number; streams: number } | null {
  let streams = 0;
  const seeds = new Set<number>();
  for (const [, m] of model.namedModules()) {
    if (!(m instanceof Dropout)) continue;
    streams++;
    if (m.training && m.p > 0) seeds.add(m.generator.seed);
  }
  return seeds.size === 1 ? { seed: [...seeds][0]!, streams } : null;
}

/**
 * The per-example LoRA dropout keys of a task's micro-batches. `stepInputs` records each
 * micro-batch (its examples' keys, padding rows keyed 0, and the step) and, while dropout is on,
 * adds them as int32 inputs, so that a captured graph replays with each micro-batch's own masks:
 * `dropoutStreamKeys` [2 · streams] (each Dropout's Philox key at this step), `dropoutRowKeys`
 * [2 · rows · seq] (each row's example key and position) and, for a gathered LM-head input,
 * `dropoutGatheredRowKeys` [2 · gathered rows]. `stepLoss` sets them on the model; without them
 * (dropout off) it sets the host keys, as `loss` does. Either way the masks are those of `loss`:
 * a row's mask depends on its own key and position only, so padding rows change no real row's mask.
 */
export class StepDropoutKeys {
  #last: { step: number; keys: number[]; gathered?: GatheredRows } | null = null;

  constructor(
    readonly where: string,
    readonly model: Module,
  ) {}

  /** Records the micro-batch of `examples` padded to [rows, seq]; returns its dropout inputs (none while dropout is off). */
  inputs(
    examples: readonly number[],
    pad: { batch: number; seq: number },
    ctx: LossContext | undefined,
    gathered?: GatheredRows,
  ): Record<string, StepInput> {
    const step = ctx?.step ?? 0;
    const keys = [...examples, ...new Array<number>(pad.batch - examples.length).fill(0)];
    this.#last = { step, keys, ...(gathered ? { gathered } : {}) };
    const dropout = activeDropout(this.model);
    if (!dropout) return {};
    const int = (data: Int32Array): StepInput => ({ shape: [data.length], dtype: 'int32', data });
    const out: Record<string, StepInput> = {
      dropoutStreamKeys: int(exampleStreamKeys(dropout.seed, step, dropout.streams)),
      dropoutRowKeys: int(exampleRowKeys(keys, pad.seq)),
    };
    if (gathered) {
      const rowKeys = gathered.rows.map((r) => keys[Math.floor(r / gathered.length)]!);
      out.dropoutGatheredRowKeys = int(
        exampleRowKeys(
          rowKeys,
          gathered.rows.map((r) => r % gathered.length),
        ),
      );
    }
    return out;
  }

  /** Gives the model's Dropouts the keys of the latest `inputs` call, checked against the tensors stepLoss got. */
  apply(inputs: Readonly<Record<string, Tensor>>, ctx: LossContext | undefined): void {
    const last = this.#last;
    const where = this.where;
    if (!last) throw new Error(`${where}: no micro-batch described: call stepInputs(batch) before stepLoss on its tensors`);
    const rows = inputs.inputIds?.shape[0];
    if (rows !== last.keys.length) {
      throw new Error(
        `${where}: inputIds has ${rows} rows but the latest stepInputs described ${last.keys.length}: call stepInputs for each micro-batch right before its stepLoss`,
      );
    }
    const step = ctx?.step ?? 0;
    if (step !== last.step)
      throw new Error(`${where}: step ${step}, but stepInputs was given step ${last.step}: pass both the same LossContext`);
    const { dropoutStreamKeys: streamKeys, dropoutRowKeys: rowKeys, dropoutGatheredRowKeys: gatheredRowKeys } = inputs;
    if (streamKeys && rowKeys) {
      setDropoutExamples(this.model, { device: { streamKeys, rowKeys, ...(gatheredRowKeys ? { gatheredRowKeys } : {}) } });
    } else {
      setDropoutExamples(this.model, { step, keys: last.keys, ...(last.gathered ? { gathered: last.gathered } : {}) });
    }
  }
}
