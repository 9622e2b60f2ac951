import type { Module, Tensor } from '@peft/core';
import { type BaseModel, type CausalLM, type ForwardInput, type KVCache, prepareInput } from '@peft/models';

/** Host rows of token ids, attention mask bits or labels. */
export type Rows = readonly (readonly number[])[];

/**
 * A batch as the heads read it: token ids [batch][seq] (or an int32 tensor) and, when the batch is
 * padded, its attention mask as host arrays (1 real token, 0 padding), left or right padding.
 */
export interface HeadBatch {
  inputIds: Rows | Tensor;
  attentionMask?: Rows | null;
}

export function isTensor(v: unknown): v is Tensor {
  return typeof v === 'object' && v !== null && typeof (v as Tensor).describe === 'function' && 'dtype' in v;
}

/** [batch, seq] of the ids, with ragged host rows and a mask of another shape refused. */
export function batchShape(where: string, batch: HeadBatch): [number, number] {
  let shape: [number, number];
  if (isTensor(batch.inputIds)) {
    if (batch.inputIds.rank !== 2) throw new Error(`${where}: inputIds ${batch.inputIds.describe()} must be [batch, seq]`);
    shape = batch.inputIds.shape as [number, number];
  } else {
    const rows = batch.inputIds;
    const seq = rows[0]?.length ?? 0;
    rows.forEach((r, i) => {
      if (r.length !== seq) {
        throw new Error(
          `${where}: inputIds row ${i} has ${r.length} tokens, row 0 has ${seq}: pad the batch to one length and pass its attentionMask`,
        );
      }
    });
    shape = [rows.length, seq];
  }
  if (shape[0] === 0 || shape[1] === 0) throw new Error(`${where}: the batch is empty (inputIds [${shape.join(', ')}])`);
  const mask = batch.attentionMask;
  if (mask) {
    if (isTensor(mask)) {
      throw new Error(
        `${where}: attentionMask ${(mask as Tensor).describe()} is a tensor; pass it as number[][] so the head can read the padding on the host`,
      );
    }
    if (mask.length !== shape[0] || mask.some((r) => r.length !== shape[1])) {
      throw new Error(
        `${where}: attentionMask must be [${shape.join(', ')}] like inputIds; got ${mask.length} rows of ${mask.map((r) => r.length).join(', ')}`,
      );
    }
  }
  return shape;
}

/**
 * Index of the last real token of each row (Study A's pooling position): sum(mask) − 1 under right
 * padding, the last position under left padding (or no mask). A row's real tokens must be one run
 * at the start or the end of the row.
 */
export function lastTokenIndex(mask: Rows | null | undefined, batch: number, seq: number): number[] {
  if (!mask) return Array.from({ length: batch }, () => seq - 1);
  return mask.map((row, b) => {
    const real = row.reduce((n, m) => n + (m !== 0 ? 1 : 0), 0);
    if (real === 0) throw new Error(`attentionMask row ${b} has no real token (all ${seq} positions are 0)`);
    const leftPadded = row[seq - 1] !== 0;
    const first = leftPadded ? seq - real : 0;
    for (let t = first; t < first + real; t++) {
      if (row[t] === 0) {
        throw new Error(
          `attentionMask row ${b} [${row.join(', ')}] is neither left- nor right-padded: its ${real} real tokens must be one run at the start or the end of the row`,
        );
      }
    }
    return leftPadded ? seq - 1 : real - 1;
  });
}

/** Every host id in [0, vocab). */
export function checkIds(where: string, ids: HeadBatch['inputIds'], vocab: number): void {
  if (isTensor(ids)) return;
  ids.forEach((r, i) => {
    r.forEach((id, j) => {
      if (!Number.isInteger(id) || id < 0 || id >= vocab)
        throw new Error(`${where}: inputIds[${i}][${j}] = ${id} is outside the vocabulary [0, ${vocab})`);
    });
  });
}

/**
 * Final hidden states [batch, seq, hidden] of `base` (the head's own registered base model, so an
 * adapter injected into the head is what runs). Call inside `tidy`: the input tensors made here
 * belong to the caller's scope.
 */
export function baseHidden(base: BaseModel, model: CausalLM, input: ForwardInput, cache?: KVCache): Tensor {
  const p = prepareInput(model.backend, input, cache?.length ?? 0);
  if (cache) p.ctx.cache = cache;
  return base.forward(p.ids, p.ctx);
}

/** Runs `fn` with `module` and everything below it in eval mode, then restores each module's mode. */
export async function inEvalMode<T>(module: Module, fn: () => Promise<T> | T): Promise<T> {
  const modes = [...module.namedModules()].map(([, m]) => [m, m.training] as const);
  module.eval();
  try {
    return await fn();
  } finally {
    for (const [m, training] of modes) m.training = training;
  }
}

export function checkCount(where: string, name: string, value: number): void {
  if (!Number.isInteger(value) || value <= 0) throw new Error(`${where}: ${name} is ${value}; it must be a positive integer`);
}
